import { createServer } from 'node:http';
import { PGlite } from '@electric-sql/pglite';
import { enterTenant, type Sql } from '../../src/db/database.ts';
import { fromWire, toWire } from './wire.ts';

/**
 * Loaded into a test's server process on PGlite with `--import` (see
 * `createStorage`): the embedded database is one process's, so a test cannot
 * open it beside the server to read what the server wrote. This answers a
 * test's statements on 127.0.0.1:PGLITE_WINDOW_PORT through the server's own
 * PGlite, each request in a transaction of its own, as the runtime role of its
 * tenant (row-level security applies) or as the owner. Test support only.
 */
let database: PGlite | undefined;
const create = PGlite.create.bind(PGlite);
PGlite.create = (async (...args: Parameters<typeof PGlite.create>) => (database = await create(...args))) as typeof PGlite.create;

interface Request {
  tenant: string | null;
  text: string;
  params?: unknown[];
  script?: boolean;
}

const window = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', async () => {
    try {
      if (!database) throw new Error('the server has not opened its database yet');
      const { tenant, text, params, script } = fromWire(Buffer.concat(chunks).toString()) as Request;
      const result = await database.transaction(async (tx) => {
        const sql: Sql = { query: (q, p) => tx.query(q, p) as Promise<{ rows: never[] }>, exec: (s) => tx.exec(s) };
        if (tenant !== null) await enterTenant(sql, tenant);
        return script ? sql.exec(text) : sql.query(text, params);
      });
      response.writeHead(200, { 'content-type': 'application/json' }).end(toWire(result));
    } catch (error) {
      response.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ message: (error as Error).message }));
    }
  });
});
// A second process on the same storage (a CLI, a refused second server) finds the port taken: it has no window.
window.on('error', () => {});
window.listen(Number(process.env.PGLITE_WINDOW_PORT), '127.0.0.1');
// Never what keeps the server process alive.
window.unref();
