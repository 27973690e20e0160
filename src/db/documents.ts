import { runTogether, type Sql, type Statement } from './database.ts';
import type { DocumentName } from '../documents/name.ts';

/**
 * Makes sure the document has its row, and locks it to the end of the
 * transaction (a commit under way is waited for). Rows: its version (last
 * seq) and whether its tables are marked stale, as `version`, `tables_stale`.
 */
export function ensureDocumentStatement(doc: DocumentName): Statement {
  return {
    text: `INSERT INTO documents AS d (tenant_id, name, kind, doc_id)
           VALUES (current_tenant(), $1, $2, $3)
           ON CONFLICT (tenant_id, name) DO UPDATE SET name = d.name
           RETURNING d.version, d.tables_stale`,
    params: [doc.name, doc.kind, doc.id],
  };
}

/**
 * Locks the documents' rows until the end of the transaction. A transaction
 * still committing updates to them (one whose outcome this process lost) holds
 * these locks, so this waits until it has landed or rolled back.
 */
export async function lockDocuments(sql: Sql, names: string[]): Promise<void> {
  await sql.query('SELECT 1 FROM documents WHERE tenant_id = current_tenant() AND name = ANY($1::text[]) ORDER BY name FOR UPDATE', [names]);
}

/** The document's version (last seq), or null when it was never opened. */
export async function documentVersion(sql: Sql, name: string): Promise<number | null> {
  const { rows } = await sql.query<{ version: string }>('SELECT version FROM documents WHERE tenant_id = current_tenant() AND name = $1', [name]);
  return rows[0] ? Number(rows[0].version) : null;
}

/** Marks documents whose audit rows or tables could not be written: they are rebuilt at next load. */
export async function markTablesStale(sql: Sql, names: string[]): Promise<void> {
  await runTogether(sql, [markTablesStaleStatement(names)]);
}

/** The same as a statement, to send beside others. */
export function markTablesStaleStatement(names: string[]): Statement {
  return { text: 'UPDATE documents SET tables_stale = true WHERE tenant_id = current_tenant() AND name = ANY($1::text[])', params: [names] };
}

export async function clearTablesStale(sql: Sql, name: string): Promise<void> {
  await sql.query('UPDATE documents SET tables_stale = false WHERE tenant_id = current_tenant() AND name = $1', [name]);
}

/**
 * How far back a document's history is exact: `latest` is its version, and
 * every version from `exactFrom` on can be rebuilt (0 when nothing was
 * pruned; else the first update retention kept, which has a checkpoint).
 * Null when the document was never opened.
 */
export async function historyBounds(sql: Sql, name: string): Promise<{ latest: number; exactFrom: number } | null> {
  const { rows } = await sql.query<{ version: string; first_seq: string | null }>(
    `SELECT version, (SELECT min(seq) FROM document_updates u WHERE u.tenant_id = d.tenant_id AND u.name = d.name) AS first_seq
     FROM documents d WHERE tenant_id = current_tenant() AND name = $1`,
    [name],
  );
  if (!rows[0]) return null;
  const firstSeq = rows[0].first_seq === null ? 1 : Number(rows[0].first_seq);
  return { latest: Number(rows[0].version), exactFrom: firstSeq > 1 ? firstSeq : 0 };
}

export interface DocumentEntry {
  name: string;
  kind: string;
  doc_id: string;
  version: number;
  updated_at: Date;
}

/** The tenant's documents in name order, after `afterName`; only those named in `only`, if given. */
export async function listDocuments(sql: Sql, afterName: string, limit: number, only?: string[]): Promise<DocumentEntry[]> {
  const { rows } = await sql.query<DocumentEntry>(
    `SELECT name, kind, doc_id, version, updated_at FROM documents
     WHERE tenant_id = current_tenant() AND name > $1 AND ($3::text[] IS NULL OR name = ANY($3::text[]))
     ORDER BY name LIMIT $2`,
    [afterName, limit, only ?? null],
  );
  return rows.map((row) => ({ ...row, version: Number(row.version) }));
}
