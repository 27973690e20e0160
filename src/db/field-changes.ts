import type { Json } from '../json.ts';
import type { Sql, Statement } from './database.ts';
import { pgJson } from './json.ts';
import type { Attribution } from './updates.ts';

export interface FieldChangeRow {
  name: string;
  seq: number;
  first_seq: number;
  /** What the row is about: `quote`, `quote_line`, `comment`, ... (each kind names its own). */
  entity: string;
  entity_id: string | null;
  field: string;
  action: 'create' | 'update' | 'delete';
  old_value: Json;
  new_value: Json;
  user_id: string;
  /** `sender` when not given. */
  attribution?: Attribution;
  changed_at: string;
  /** The updates a text burst's row was made by (each it was extended with); absent: its own seq only. */
  seqs?: number[];
}

/**
 * Inserts audit rows in one statement; its rows are the id and place in `rows`
 * of each row that opens a text burst (`seqs` given: later commits extend it
 * by id), and only of those (see `insertedIds`). Per row, as little as can
 * be: the identity's sequence by name, and a row of one update gets its range
 * without an aggregate (a commit at full speed writes hundreds).
 */
export function insertFieldChanges(rows: FieldChangeRow[]): Statement | null {
  if (rows.length === 0) return null;
  return {
    text: `WITH numbered AS (
       SELECT nextval('field_changes_id_seq') AS id, r.*
       FROM jsonb_to_recordset($1::jsonb) AS r(
         name text, seq bigint, first_seq bigint, entity text, entity_id text, field text, action text,
         old_value jsonb, new_value jsonb, user_id text, attribution text, changed_at timestamptz, seqs bigint[], ord integer)
     ),
     inserted AS (
       INSERT INTO field_changes (id, tenant_id, name, seq, first_seq, entity, entity_id, field, action, old_value, new_value, user_id, attribution, changed_at, seqs)
       SELECT id, current_tenant(), name, seq, first_seq, entity, entity_id, field, action, old_value, new_value, user_id, COALESCE(attribution, 'sender'), changed_at,
         CASE WHEN seqs IS NULL THEN int8multirange(int8range(seq, seq, '[]')) ELSE ${SEQ_RANGES('seqs')} END FROM numbered
     )
     SELECT id, ord FROM numbered WHERE seqs IS NOT NULL`,
    params: [pgJson(rows.map((row, ord) => ({ ...row, ord })))],
  };
}

/** The ids `insertFieldChanges` gave the rows opening a text burst, at their places in its input. */
export function insertedIds(inserted: Record<string, unknown>[]): number[] {
  const ids: number[] = [];
  for (const row of inserted) ids[Number(row.ord)] = Number(row.id);
  return ids;
}

/** The multirange of the seqs in a bigint[] expression (one range per run of consecutive seqs). */
const SEQ_RANGES = (seqs: string) => `(SELECT range_agg(int8range(s, s, '[]')) FROM unnest(${seqs}) AS s)`;

/**
 * Extends open text bursts: their rows now end at a later seq with a later
 * text, and cover the updates `seqs` too. The ids also go as an array, so the
 * rows are found by primary key: joined on the recordset alone, Postgres
 * plans a scan of every audit row of the tenant (it guesses 100 rows).
 */
export function extendFieldChanges(rows: Array<{ id: number; seq: number; seqs: number[]; new_value: Json; changed_at: string }>): Statement | null {
  if (rows.length === 0) return null;
  return {
    text: `UPDATE field_changes f SET seq = r.seq, new_value = r.new_value, changed_at = r.changed_at, seqs = f.seqs + ${SEQ_RANGES('r.seqs')}
     FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, seq bigint, seqs bigint[], new_value jsonb, changed_at timestamptz)
     WHERE f.id = ANY($2::bigint[]) AND f.tenant_id = current_tenant() AND f.id = r.id`,
    params: [pgJson(rows), rows.map((row) => row.id)],
  };
}

export interface FieldChangeFilter {
  entity?: string;
  field?: string;
  user?: string;
  /** `changed_at` at or after. */
  since?: Date;
  /** `changed_at` at or before. */
  until?: Date;
  /** Rows that cover an update in [fromSeq, toSeq] (a text burst covers the updates that typed into it). */
  fromSeq?: number;
  toSeq?: number;
}

export type StoredFieldChange = Omit<FieldChangeRow, 'changed_at'> & { id: number; changed_at: Date };

/** Audit rows of a document matching `filter`, in id (insertion) order, after the row `afterId`. */
export async function fieldChangePage(sql: Sql, name: string, filter: FieldChangeFilter, afterId: number, limit: number): Promise<StoredFieldChange[]> {
  const { rows } = await sql.query<StoredFieldChange>(
    `SELECT id, name, seq, first_seq, entity, entity_id, field, action, old_value, new_value, user_id, attribution, changed_at
     FROM field_changes
     WHERE tenant_id = current_tenant() AND name = $1 AND id > $2
       AND ($3::text IS NULL OR entity = $3) AND ($4::text IS NULL OR field = $4) AND ($5::text IS NULL OR user_id = $5)
       AND ($6::timestamptz IS NULL OR changed_at >= $6) AND ($7::timestamptz IS NULL OR changed_at <= $7)
       AND ($8::bigint IS NULL OR seq >= $8) AND ($9::bigint IS NULL OR first_seq <= $9)
       AND (seqs IS NULL OR seqs && int8range($8::bigint, $9::bigint, '[]'))
     ORDER BY id LIMIT $10`,
    [
      name,
      afterId,
      filter.entity ?? null,
      filter.field ?? null,
      filter.user ?? null,
      filter.since?.toISOString() ?? null,
      filter.until?.toISOString() ?? null,
      filter.fromSeq ?? null,
      filter.toSeq ?? null,
      limit,
    ],
  );
  return rows.map((row) => ({ ...row, id: Number(row.id), seq: Number(row.seq), first_seq: Number(row.first_seq) }));
}

export type FieldTouch = Pick<FieldChangeRow, 'seq' | 'first_seq' | 'entity' | 'entity_id' | 'field' | 'user_id'> & {
  /** The updates from `fromSeq` to `toSeq` the row was made by; null for rows older than that record (see schema/005). */
  covered: number[] | null;
};

/** Which fields the audit rows covering updates `fromSeq` to `toSeq` name (without their values). */
export async function fieldsTouched(sql: Sql, name: string, fromSeq: number, toSeq: number): Promise<FieldTouch[]> {
  const { rows } = await sql.query<FieldTouch>(
    `SELECT seq, first_seq, entity, entity_id, field, user_id,
       CASE WHEN seqs IS NOT NULL THEN ARRAY(
         SELECT generate_series(lower(r), upper(r) - 1) FROM unnest(seqs * int8multirange(int8range($2, $3, '[]'))) AS r
       ) END AS covered
     FROM field_changes
     WHERE tenant_id = current_tenant() AND name = $1 AND seq >= $2 AND first_seq <= $3
     ORDER BY id`,
    [name, fromSeq, toSeq],
  );
  return rows.map((row) => ({ ...row, seq: Number(row.seq), first_seq: Number(row.first_seq), covered: row.covered?.map(Number) ?? null }));
}
