import type { Config } from '../../src/config.ts';
import { loadConfig } from '../../src/config.ts';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/log.ts';
import { openDatabase } from '../../src/server.ts';
import type { TestStorage } from './database.ts';

/** Opens a test's database in this process, through Concord's own database layer. */
export function openTestDatabase(storage: TestStorage): Promise<Database> {
  const config: Config = loadConfig({ ...storage.env, AUTH_JWT_SECRET: 'x'.repeat(32) });
  return openDatabase(config, createLogger('silent'));
}

export interface LoggedRow {
  seq: number;
  update: Uint8Array;
  user_id: string;
  origin: string;
}

export async function loggedUpdates(db: Database, tenant: string, name: string): Promise<LoggedRow[]> {
  return db.transaction(tenant, async (sql) => {
    const { rows } = await sql.query<LoggedRow>('SELECT seq, update, user_id, origin FROM document_updates WHERE name = $1 ORDER BY seq', [name]);
    return rows;
  });
}
