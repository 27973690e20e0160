import type { Sql } from './database.ts';
import type { DocumentName } from '../documents/name.ts';

/** Makes sure the document has its row; returns its current version (last seq) and whether its tables are marked stale. */
export async function ensureDocument(sql: Sql, doc: DocumentName): Promise<{ version: number; tablesStale: boolean }> {
  const { rows } = await sql.query<{ version: number; tables_stale: boolean }>(
    `INSERT INTO documents AS d (tenant_id, name, kind, doc_id)
     VALUES (current_tenant(), $1, $2, $3)
     ON CONFLICT (tenant_id, name) DO UPDATE SET name = d.name
     RETURNING d.version, d.tables_stale`,
    [doc.name, doc.kind, doc.id],
  );
  return { version: rows[0]!.version, tablesStale: rows[0]!.tables_stale };
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
  await sql.query('UPDATE documents SET tables_stale = true WHERE tenant_id = current_tenant() AND name = ANY($1::text[])', [names]);
}

export async function clearTablesStale(sql: Sql, name: string): Promise<void> {
  await sql.query('UPDATE documents SET tables_stale = false WHERE tenant_id = current_tenant() AND name = $1', [name]);
}
