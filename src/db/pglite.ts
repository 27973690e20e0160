import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import type { Transaction } from '@electric-sql/pglite';
import { enterTenant, type Database, type Sql } from './database.ts';

function wrap(tx: Transaction): Sql {
  return {
    query: (text, params) => tx.query(text, params) as Promise<{ rows: never[] }>,
    exec: (script) => tx.exec(script),
  };
}

/**
 * The embedded default: PGlite called in process. PGlite is one Postgres
 * session, so it is never exposed through a socket (clients would share the
 * superuser session and bypass RLS); every transaction switches to the runtime
 * role exactly as the pg backend does.
 */
export async function createPgliteDatabase(directory: string): Promise<Database> {
  mkdirSync(directory, { recursive: true });
  const db = await PGlite.create(directory);
  let closed = false;

  return {
    transaction: (tenant, work) =>
      db.transaction(async (tx) => {
        const sql = wrap(tx);
        await enterTenant(sql, tenant);
        return work(sql);
      }),
    ownerTransaction: (work) => db.transaction((tx) => work(wrap(tx))),
    async ping() {
      if (closed) throw new Error('the embedded database is closed');
      await db.query('SELECT 1');
    },
    async close() {
      closed = true;
      await db.close();
    },
  };
}
