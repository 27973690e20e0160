import type { Sql } from './database.ts';
import type { DocumentName } from '../documents/name.ts';

/** Makes sure the document has its row; returns its current version (last seq). */
export async function ensureDocument(sql: Sql, doc: DocumentName): Promise<number> {
  const { rows } = await sql.query<{ version: number }>(
    `INSERT INTO documents AS d (tenant_id, name, kind, doc_id)
     VALUES (current_tenant(), $1, $2, $3)
     ON CONFLICT (tenant_id, name) DO UPDATE SET name = d.name
     RETURNING d.version`,
    [doc.name, doc.kind, doc.id],
  );
  return rows[0]!.version;
}
