import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
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
  const unlock = lockDirectory(directory);
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
      unlock();
    },
  };
}

/**
 * PGlite is a whole Postgres in this process: two processes on one folder
 * would both write its files. A lock file naming host and pid keeps the folder
 * to one process. A file left by a process that no longer runs on this host
 * (killed, say) is taken over; one from another host (two containers sharing a
 * volume) cannot be checked, so it is refused.
 */
function lockDirectory(directory: string): () => void {
  const file = join(directory, 'concord.lock');
  const me = `${hostname()} ${process.pid}`;
  for (;;) {
    try {
      writeFileSync(file, me, { flag: 'wx' });
      return () => rmSync(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readFileSync(file, 'utf8');
    const [host, pid] = holder.split(' ');
    const stale = host === hostname() && (Number(pid) === process.pid || !isRunning(Number(pid)));
    if (!stale) {
      throw new DirectoryLockedError(
        `the embedded database in ${directory} is in use by process ${pid} on ${host}; stop it first, or give this process its own DATA_DIR (delete ${file} if that process is gone)`,
      );
    }
    rmSync(file, { force: true });
  }
}

export class DirectoryLockedError extends Error {
  override name = 'DirectoryLockedError';
}

function isRunning(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
