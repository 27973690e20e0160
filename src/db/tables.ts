import type { Json } from '../json.ts';
import type { Sql, Statement } from './database.ts';
import { pgJson } from './json.ts';

/** A relational table a kind keeps in step: its columns with their Postgres types (`numeric(14,2)` for money), and its key. */
export interface TableSpec {
  name: string;
  columns: Record<string, string>;
  key: readonly string[];
}

// Table and column names come from the kind modules, never from input.
const quoted = (name: string) => `"${name}"`;

/**
 * Inserts or updates rows of a kind's table in one statement: the rows travel
 * as one jsonb array and are typed by `jsonb_to_recordset`. Columns in
 * `keepOnConflict` are written only by the insert.
 */
export function upsertRows(table: TableSpec, rows: Array<Record<string, Json>>, keepOnConflict: readonly string[] = []): Statement | null {
  if (rows.length === 0) return null;
  return { text: upsertText(table, keepOnConflict), params: [pgJson(rows)] };
}

// Every commit writes its rows with the same few statements: each text is built once per table (and kept columns).
const upsertTexts = new WeakMap<TableSpec, Map<string, string>>();

function upsertText(table: TableSpec, keepOnConflict: readonly string[]): string {
  let ofTable = upsertTexts.get(table);
  if (!ofTable) upsertTexts.set(table, (ofTable = new Map()));
  const key = keepOnConflict.join(',');
  let text = ofTable.get(key);
  if (text !== undefined) return text;
  const columns = Object.keys(table.columns).map(quoted);
  const typed = Object.entries(table.columns).map(([column, type]) => `${quoted(column)} ${type}`);
  const updates = Object.keys(table.columns)
    .filter((column) => !table.key.includes(column) && !keepOnConflict.includes(column))
    .map((column) => `${quoted(column)} = EXCLUDED.${quoted(column)}`);
  text = `INSERT INTO ${table.name} (tenant_id, ${columns.join(', ')})
     SELECT current_tenant(), ${columns.join(', ')} FROM jsonb_to_recordset($1::jsonb) AS r(${typed.join(', ')})
     ON CONFLICT (tenant_id, ${table.key.map(quoted).join(', ')}) DO UPDATE SET ${updates.join(', ')}`;
  ofTable.set(key, text);
  return text;
}

/** Deletes member rows by (parent id, id); the keys also go as arrays so the rows are found by primary key (see `extendFieldChanges`). */
export function deleteMembers(table: TableSpec & { parentColumn: string }, keys: Array<{ parent: string; id: string }>): Statement | null {
  if (keys.length === 0) return null;
  const parent = quoted(table.parentColumn);
  return {
    text: `DELETE FROM ${table.name} t USING jsonb_to_recordset($1::jsonb) AS r(parent text, id text)
     WHERE t.tenant_id = current_tenant() AND t.${parent} = ANY($2::text[]) AND t.id = ANY($3::text[]) AND t.${parent} = r.parent AND t.id = r.id`,
    params: [pgJson(keys), [...new Set(keys.map((key) => key.parent))], keys.map((key) => key.id)],
  };
}

/** Deletes the member rows of one parent that are not in `keep`. */
export async function deleteMembersExcept(sql: Sql, table: TableSpec & { parentColumn: string }, parent: string, keep: string[]): Promise<void> {
  await sql.query(
    `DELETE FROM ${table.name} WHERE tenant_id = current_tenant() AND ${quoted(table.parentColumn)} = $1 AND NOT (id = ANY($2::text[]))`,
    [parent, keep],
  );
}

/** The `version` of a header row, as a statement to send with others: no row when it has none. */
export function headerVersionStatement(table: TableSpec, id: string): Statement {
  return { text: `SELECT version FROM ${table.name} WHERE tenant_id = current_tenant() AND id = $1`, params: [id] };
}

/**
 * Ids of the rows that differ from the stored ones in any column of `table`:
 * rows stored differently or not at all, and stored rows (of `scope`) that
 * `rows` lacks (each row has every column, `scope`'s included). Postgres
 * compares the values as typed (12.5 equals 12.50).
 */
export async function differingRows(sql: Sql, table: TableSpec, rows: Array<Record<string, Json>>, scope: { column: string; value: string }): Promise<string[]> {
  const columns = Object.keys(table.columns);
  const typed = Object.entries(table.columns).map(([column, type]) => `${quoted(column)} ${type}`);
  const { rows: differing } = await sql.query<{ id: string }>(
    `SELECT coalesce(s.id, r.id) AS id
     FROM (SELECT * FROM ${table.name} WHERE tenant_id = current_tenant() AND ${quoted(scope.column)} = $2) s
     FULL JOIN jsonb_to_recordset($1::jsonb) AS r(${typed.join(', ')}) ON s.id = r.id
     WHERE s.id IS NULL OR r.id IS NULL
        OR ROW(${columns.map((column) => `s.${quoted(column)}`).join(', ')}) IS DISTINCT FROM ROW(${columns.map((column) => `r.${quoted(column)}`).join(', ')})`,
    [pgJson(rows), scope.value],
  );
  return differing.map((row) => row.id);
}
