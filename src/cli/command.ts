import { CommanderError, type Command } from 'commander';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import { DatabaseInUseError } from '../db/pglite.ts';
import { ConcordError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { createMetrics } from '../metrics.ts';
import { Checkpointer } from '../persistence/checkpoints.ts';
import { openDatabase } from '../database.ts';
import { PostgresStorage } from '../storage/postgres.ts';

/**
 * Parses the command line and runs the command (`--help` prints its usage);
 * an error ends the process with status 1 and one line, `<command>: <why>`,
 * bad arguments included.
 */
export async function runCommand(program: Command): Promise<void> {
  program.exitOverride().configureOutput({ outputError: () => {} });
  try {
    await program.parseAsync();
  } catch (error) {
    if (error instanceof CommanderError && error.exitCode === 0) return;
    const why =
      error instanceof ConcordError
        ? `${error.code}: ${error.message}`
        : error instanceof CommanderError
          ? error.message.replace(/^error: /, '')
          : (error as Error).message || String(error);
    console.error(`${program.name()}: ${why.replace(/\s*\n\s*/g, ' ')}`);
    process.exit(1);
  }
}

/** A Concord server that holds the embedded database and answers at `url`. */
export interface RunningServer {
  url: string;
  pid: number;
}

const SERVER_CHECK_MS = 2_000;

/**
 * Runs `work` on the database, then closes it. Logs go to stderr, warnings
 * only unless LOG_LEVEL asks for more: stdout is the answer. While a server
 * holds the embedded database (one process only may open it), the command is
 * handed that server instead (`whenServerHolds`): through its HTTP API, or to
 * say what the server does in its place. A holder that does not answer may be
 * dying: it is waited for as a starting server would.
 */
export async function withDatabase<T>(
  config: Config,
  whenServerHolds: (server: RunningServer) => Promise<T>,
  work: (db: Database, log: Logger) => Promise<T>,
): Promise<T> {
  const log = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, 2);
  let db: Database;
  try {
    db = await openDatabase(config, log, 0);
  } catch (error) {
    if (!(error instanceof DatabaseInUseError)) throw error;
    const url = error.holder?.url;
    if (url && (await answers(url))) return whenServerHolds({ url, pid: error.holder!.pid });
    db = await openDatabase(config, log);
  }
  try {
    return await work(db, log);
  } finally {
    await db.close();
  }
}

/**
 * `withDatabase` with a checkpoint builder: reading history may write
 * checkpoints where the log has none yet, exactly as the server does.
 */
export function withHistoryStore<T>(
  config: Config,
  whenServerHolds: (server: RunningServer) => Promise<T>,
  work: (db: Database, checkpointer: Checkpointer, log: Logger) => Promise<T>,
): Promise<T> {
  return withDatabase(config, whenServerHolds, async (db, log) => {
    const checkpointer = new Checkpointer({ storage: new PostgresStorage(db), every: config.CHECKPOINT_EVERY, keepBytes: 0, log, metrics: createMetrics() });
    try {
      return await work(db, checkpointer, log);
    } finally {
      await checkpointer.close();
    }
  });
}

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(SERVER_CHECK_MS) })).ok;
  } catch {
    return false;
  }
}
