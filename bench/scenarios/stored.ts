import type { Database } from '../../src/db/database.ts';
import { openTestDatabase, rowsOf } from '../../test/support/inspect.ts';
import { TENANT, type Deployment } from '../harness/deployment.ts';

/**
 * Checks what Concord stored for `documents` against what the clients had
 * acknowledged: `updates` rows in the log in all, seqs without gaps, the
 * `quotes` rows caught up with the log and counting the `quote_lines` rows
 * there are (the projection kept up). Throws
 * otherwise: a figure from a server that loses or skips updates is no figure.
 */
export async function verifyStored(deployment: Deployment, documents: string[], updates: number): Promise<string> {
  if (!deployment.storage) throw new Error('only Concord stores anything');
  const db: Database = await openTestDatabase(deployment.storage);
  try {
    const names = documents.map((id) => `${TENANT}/quote/${id}`);
    const rows = await rowsOf<{ name: string; version: number; logged: number; first: number; projected: number | null; line_count: number; lines: number }>(
      db,
      TENANT,
      `SELECT d.name, d.version, count(u.seq)::int AS logged, min(u.seq)::int AS first, q.version AS projected, q.line_count,
              (SELECT count(*)::int FROM quote_lines l WHERE l.quote_id = d.doc_id) AS lines
         FROM documents d
         LEFT JOIN document_updates u ON u.name = d.name
         LEFT JOIN quotes q ON q.id = d.doc_id
        WHERE d.name = ANY($1)
        GROUP BY d.name, d.version, d.doc_id, q.version, q.line_count`,
      [names],
    );
    const problems = [];
    if (rows.length !== names.length) problems.push(`${names.length - rows.length} document(s) never stored`);
    const logged = rows.reduce((sum, row) => sum + row.logged, 0);
    if (logged !== updates) problems.push(`${logged} updates logged, ${updates} acknowledged`);
    for (const row of rows) {
      if (row.first !== 1 || row.logged !== row.version) problems.push(`${row.name}: seqs ${row.first}..${row.version} hold ${row.logged} updates`);
      if (row.projected !== row.version) problems.push(`${row.name}: quotes row at version ${row.projected}, log at ${row.version}`);
      if (row.line_count !== row.lines) problems.push(`${row.name}: quotes.line_count ${row.line_count}, ${row.lines} quote_lines rows`);
    }
    if (problems.length) throw new Error(`Concord's storage does not match what was acknowledged: ${problems.slice(0, 5).join('; ')}`);
    return `verified in PostgreSQL: all ${updates.toLocaleString('en')} acknowledged updates logged once, seqs without gaps, quotes rows at the last seq with every line`;
  } finally {
    await db.close();
  }
}
