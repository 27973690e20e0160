import type { Command } from 'commander';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import { ConcordError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { createMetrics } from '../metrics.ts';
import { Checkpointer } from '../persistence/checkpoints.ts';
import { openDatabase } from '../server.ts';

/** Parses the command line and runs the command; an error ends the process with status 1 and `<command>: <why>`. */
export async function runCommand(program: Command): Promise<void> {
  try {
    await program.parseAsync();
  } catch (error) {
    const why = error instanceof ConcordError ? `${error.code}: ${error.message}` : (error as Error).message;
    console.error(`${program.name()}: ${why}`);
    process.exit(1);
  }
}

/**
 * The database and a checkpoint builder (reading history may write checkpoints
 * where the log has none yet, exactly as the server does), closed afterwards.
 * Logs only warnings unless LOG_LEVEL asks for more: the output is the answer.
 */
export async function withHistoryStore<T>(config: Config, work: (db: Database, checkpointer: Checkpointer, log: Logger) => Promise<T>): Promise<T> {
  const log = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL);
  const db = await openDatabase(config, log);
  const checkpointer = new Checkpointer(db, config.CHECKPOINT_EVERY, log, createMetrics());
  try {
    return await work(db, checkpointer, log);
  } finally {
    await checkpointer.close();
    await db.close();
  }
}
