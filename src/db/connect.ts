import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from '../config.ts';
import type { Logger } from '../log.ts';
import type { Database } from './database.ts';
import { createPostgresDatabase } from './postgres.ts';

/** Failures that may pass by themselves: the server is starting, restarting, hung, or not yet in DNS (compose). */
const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', '57P03', 'postgres-timeout']);
const FIRST_RETRY_MS = 1_000;
const LONGEST_RETRY_MS = 5_000;

/**
 * A PostgreSQL database that answered: a start that finds it down (starting
 * beside Concord, say) retries for up to `waitMs`, logging each retry, then
 * fails with one line naming `setting` and what to check. A refused login or a
 * missing database fails at once: waiting would not change it.
 */
export async function connectPostgres(url: string, setting: string, log: Logger, waitMs: number): Promise<Database> {
  const db = createPostgresDatabase(url, log);
  const where = describe(url);
  const deadline = Date.now() + waitMs;
  for (let delay = FIRST_RETRY_MS; ; delay = Math.min(delay * 2, LONGEST_RETRY_MS)) {
    try {
      await db.ping();
      return db;
    } catch (error) {
      const why = (error as Error).message || String((error as NodeJS.ErrnoException).code);
      if (!transient(error) || Date.now() + delay > deadline) {
        await db.close();
        throw new ConfigError(
          transient(error)
            ? `PostgreSQL at ${where} (${setting}) does not answer: ${why}. Check that it runs and that ${setting} is right${setting === 'DATABASE_URL' ? ', or unset DATABASE_URL to use the embedded database' : ''}`
            : `PostgreSQL at ${where} (${setting}) refused: ${why}. Fix ${setting}`,
        );
      }
      log.warn({ code: 'database-unreachable', setting, where, retryInMs: delay }, `PostgreSQL at ${where} (${setting}) does not answer: ${why}; retrying in ${delay / 1000} s`);
      await sleep(delay);
    }
  }
}

function transient(error: unknown): boolean {
  const { code, message } = error as NodeJS.ErrnoException;
  // pg's own connection timeout (connectionTimeoutMillis) has no code.
  return TRANSIENT_CODES.has(code ?? '') || /timeout exceeded when trying to connect|Connection terminated/i.test(message ?? '');
}

/** Host, port and database of a URL, without its user or password. */
function describe(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.host}${parsed.pathname}`;
  } catch {
    return 'the configured address';
  }
}
