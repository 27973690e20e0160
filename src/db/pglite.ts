import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { PGlite } from '@electric-sql/pglite';
import type { Transaction } from '@electric-sql/pglite';
import lockfile from 'proper-lockfile';
import type { Logger } from '../log.ts';
import { enterTenant, oneMessage, PreparedStatements, type Database, type Sql } from './database.ts';

function wrap(tx: Transaction, prepared: PreparedStatements): Sql {
  const exec = (script: string) => tx.exec(script);
  return {
    query: (text, params) => tx.query(text, params) as Promise<{ rows: never[] }>,
    exec,
    prepare: (text) => prepared.prepare(text, exec),
  };
}

/**
 * The embedded default: PGlite called in process. PGlite is one Postgres
 * session, so it is never exposed through a socket (clients would share the
 * superuser session and bypass RLS); every transaction switches to the runtime
 * role exactly as the pg backend does.
 */
export async function createPgliteDatabase(directory: string, log: Logger, waitForHolderMs = HOLDER_GRACE_MS): Promise<Database> {
  mkdirSync(directory, { recursive: true });
  const unlock = await lockDirectory(directory, log, waitForHolderMs);
  const db = await PGlite.create(directory);
  // PGlite is one session: what is prepared in it lasts until it closes.
  const prepared = new PreparedStatements();
  let closed = false;
  const transaction: Database['transaction'] = (tenant, work) =>
    db.transaction(async (tx) => {
      const sql = wrap(tx, prepared);
      await enterTenant(sql, tenant);
      return work(sql);
    });

  return {
    transaction,
    // Called in process, a transaction costs no round trips: only the one message is kept, as the pg backend keeps it.
    single: (tenant, work) => transaction(tenant, (sql) => work(oneMessage(sql))),
    ownerTransaction: (work) => db.transaction((tx) => work(wrap(tx, prepared))),
    async ping() {
      if (closed) throw new Error('the embedded database is closed');
      await db.query('SELECT 1');
    },
    async close() {
      closed = true;
      await db.close();
      await unlock();
    },
  };
}

/**
 * A lock holder refreshes its lock's mtime every second; one untouched for this
 * long belongs to a process that is gone (killed, or its container removed),
 * whatever host or pid it had. Starting PGlite stalls the event loop for about
 * 0.2 s at most, far below this.
 */
const STALE_MS = 5_000;
const HEARTBEAT_MS = 1_000;
/** How long a start waits for a holder that may be dying before it refuses. */
export const HOLDER_GRACE_MS = STALE_MS + 2_000;
const RETRY_MS = 250;

/** Who holds an embedded database, as its holder wrote it down. */
export interface Holder {
  pid: number;
  host: string;
  /** Where the holder serves HTTP, once it is a listening server. */
  url?: string;
}

/** The embedded database is held by another live process (`holder`, when it could be read). */
export class DatabaseInUseError extends Error {
  override name = 'DatabaseInUseError';
  readonly holder: Holder | null;

  constructor(directory: string, holder: Holder | null) {
    const who = holder ? `process ${holder.pid} on ${holder.host}${holder.url ? ` (${holder.url})` : ''}` : 'another process';
    super(`the embedded database in ${directory} is in use by ${who}: stop it first, or give this process its own DATA_DIR`);
    this.holder = holder;
  }
}

const holderFile = (directory: string) => `${directory}.holder.json`;

/** The holder of `directory`'s embedded database, as it wrote itself down (null if it has not, or the note is unreadable). */
export function readHolder(directory: string): Holder | null {
  try {
    const note = JSON.parse(readFileSync(holderFile(directory), 'utf8')) as Holder;
    return Number.isInteger(note.pid) && typeof note.host === 'string' ? note : null;
  } catch {
    return null;
  }
}

/** Adds where this process serves HTTP to its holder note, so the command-line tools can reach it. */
export function announceServer(directory: string, url: string): void {
  writeFileSync(holderFile(directory), JSON.stringify({ pid: process.pid, host: hostname(), url } satisfies Holder));
}

/**
 * PGlite is a whole Postgres in this process: two processes on one folder
 * would both write its files. The lock (proper-lockfile: an atomic mkdir whose
 * mtime the holder keeps fresh) dies with its holder: once the mtime is
 * STALE_MS old the holder is gone, crashed or SIGKILLed, on this host or in a
 * removed container, and the lock is taken over. No pid is asked: a killed
 * process stays visible to kill(pid, 0) until it is reaped. A live holder is
 * waited for up to `waitMs` (it may be dying), then refused.
 */
async function lockDirectory(directory: string, log: Logger, waitMs: number): Promise<() => Promise<void>> {
  const deadline = Date.now() + waitMs;
  for (let waited = false; ; waited = true) {
    try {
      const release = await lockfile.lock(directory, {
        stale: STALE_MS,
        update: HEARTBEAT_MS,
        // Only a process whose event loop stalled for STALE_MS gets here: another may have taken the folder since.
        onCompromised: (error) => {
          log.fatal({ err: error, code: 'database-lock-lost' }, `lost the lock on the embedded database in ${directory}; stopping before two processes write it`);
          process.exit(1);
        },
      });
      writeFileSync(holderFile(directory), JSON.stringify({ pid: process.pid, host: hostname() } satisfies Holder));
      return async () => {
        rmSync(holderFile(directory), { force: true });
        await release();
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error;
    }
    const holder = readHolder(directory);
    if (Date.now() + RETRY_MS > deadline) throw new DatabaseInUseError(directory, holder);
    if (!waited) log.warn({ code: 'database-in-use', holder }, `waiting up to ${Math.round(waitMs / 1000)} s for ${holder ? `process ${holder.pid}` : 'the previous process'} to let go of the embedded database in ${directory}`);
    await sleep(RETRY_MS);
  }
}
