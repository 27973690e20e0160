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

/** Rows of any query, run as the runtime role inside `tenant` (row-level security applies). */
export async function rowsOf<Row = Record<string, unknown>>(db: Database, tenant: string, text: string, params: unknown[] = []): Promise<Row[]> {
  return db.transaction(tenant, async (sql) => (await sql.query<Row>(text, params)).rows);
}

export interface FieldChangeRow {
  seq: number;
  first_seq: number;
  entity: string;
  entity_id: string | null;
  field: string;
  action: string;
  old_value: unknown;
  new_value: unknown;
  user_id: string;
}

export function fieldChanges(db: Database, tenant: string, name: string): Promise<FieldChangeRow[]> {
  return rowsOf<FieldChangeRow>(
    db,
    tenant,
    'SELECT seq, first_seq, entity, entity_id, field, action, old_value, new_value, user_id FROM field_changes WHERE name = $1 ORDER BY seq, id',
    [name],
  );
}
