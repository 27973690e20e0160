import { join } from 'node:path';
import type { Config } from './config.ts';
import { connectPostgres } from './db/connect.ts';
import type { Database, OwnerDatabase } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import { createPgliteDatabase } from './db/pglite.ts';
import type { PruneTarget } from './history/retention.ts';
import type { Logger } from './log.ts';
import type { Checkpointer } from './persistence/checkpoints.ts';
import { PostgresRetention } from './storage/postgres-history.ts';

// Opening the configured database, for the server and the command-line tools
// alike: PostgreSQL at DATABASE_URL, else the embedded one in DATA_DIR; and the
// role that owns the tables, for migrations and pruning.

/** Where the embedded database lives when DATABASE_URL is unset. */
export function embeddedDatabaseDirectory(config: Config): string {
  return join(config.DATA_DIR, 'pgdata');
}

/** `waitForHolderMs`: how long an embedded database held by another (perhaps dying) process is waited for. */
export async function openDatabase(config: Config, log: Logger, waitForHolderMs?: number): Promise<Database> {
  if (config.DATABASE_URL) return connectPostgres(config.DATABASE_URL, 'DATABASE_URL', log, config.DATABASE_WAIT_MS);
  return createPgliteDatabase(embeddedDatabaseDirectory(config), log, waitForHolderMs);
}

/** Runs `work` as the role that owns the tables: MIGRATION_DATABASE_URL's when one is configured, else `db`'s own. */
export async function asOwner<T>(config: Config, db: Database, log: Logger, work: (owner: Database) => Promise<T>): Promise<T> {
  if (!config.MIGRATION_DATABASE_URL) return work(db);
  const owner = await connectPostgres(config.MIGRATION_DATABASE_URL, 'MIGRATION_DATABASE_URL', log, config.DATABASE_WAIT_MS);
  try {
    return await work(owner);
  } finally {
    await owner.close();
  }
}

/**
 * The owner role's database kept for the server's life: MIGRATION_DATABASE_URL's,
 * connected at first use (a failed connection is tried again at the next), or
 * `db`'s own role when none is set.
 */
export function ownerDatabase(config: Config, db: Database, log: Logger): OwnerDatabase {
  if (!config.MIGRATION_DATABASE_URL) return { transaction: (work) => db.ownerTransaction(work), close: async () => {} };
  const url = config.MIGRATION_DATABASE_URL;
  let owner: Promise<Database> | null = null;
  const connected = () => {
    owner ??= connectPostgres(url, 'MIGRATION_DATABASE_URL', log, config.DATABASE_WAIT_MS);
    owner.catch(() => (owner = null));
    return owner;
  };
  return {
    transaction: async (work) => (await connected()).ownerTransaction(work),
    close: async () => {
      await owner?.then((database) => database.close(), () => {});
    },
  };
}

/** Applies pending migrations, as the migration role when one is configured. */
export function migrateSchema(config: Config, db: Database, log: Logger): Promise<string[]> {
  return asOwner(config, db, log, migrate);
}

/** What history retention needs: the runtime database, the owner's, and the checkpoint builder. */
export function pruneTarget(config: Config, db: Database, checkpointer: Checkpointer, log: Logger): PruneTarget {
  return { checkpointer, log, asOwner: (work) => asOwner(config, db, log, (owner) => work(new PostgresRetention(db, owner))) };
}
