import { afterAll, beforeAll } from 'vitest';
import type { Config } from '../../src/config.ts';
import { loadConfig } from '../../src/config.ts';
import type { Database, Sql } from '../../src/db/database.ts';
import { createLogger } from '../../src/log.ts';
import { openDatabase } from '../../src/database.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createStorage, type TestStorage } from './database.ts';
import { fromWire, toWire } from './wire.ts';

/**
 * Opens a test's database in this process, through Concord's own database
 * layer; on PGlite while a server holds it, through that server's window.
 */
export async function openTestDatabase(storage: TestStorage): Promise<Database> {
  if (storage.windowPort && (await windowOpen(storage.windowPort))) return throughWindow(storage.windowPort);
  const config: Config = loadConfig({ ...storage.env, AUTH_JWT_SECRET: 'x'.repeat(32) });
  return openDatabase(config, createLogger('silent'));
}

/** `openTestDatabase` with the schema migrated, for tests that write Concord's tables without a server. */
export async function openMigratedDatabase(storage: TestStorage): Promise<Database> {
  const db = await openTestDatabase(storage);
  await migrate(db);
  return db;
}

/**
 * A fresh migrated database on `kind` for the suite that calls this: opened
 * before its tests, handed to `opened` (to keep, and to set up what the suite
 * needs), closed and dropped after them. Nothing when the backend is skipped
 * (`reason`).
 */
export function suiteDatabase(kind: TestStorage['kind'], reason: string, opened: (db: Database) => Promise<unknown> | void): void {
  let storage: TestStorage | undefined;
  let db: Database | undefined;
  beforeAll(async () => {
    if (reason) return;
    storage = await createStorage(kind);
    db = await openMigratedDatabase(storage);
    await opened(db);
  });
  afterAll(async () => {
    await db?.close();
    await storage?.drop();
  });
}

async function windowOpen(port: number): Promise<boolean> {
  return fetch(`http://127.0.0.1:${port}`, { method: 'POST', body: toWire({ tenant: null, text: 'SELECT 1' }) }).then(
    (response) => response.ok,
    () => false,
  );
}

/**
 * The server's PGlite through its window (test/support/pglite-window.ts): each
 * statement is a transaction of its own, which is all reading what a server
 * wrote (or appending a few updates) needs.
 */
function throughWindow(port: number): Database {
  const send = async (tenant: string | null, text: string, params: unknown[] | undefined, script: boolean) => {
    const response = await fetch(`http://127.0.0.1:${port}`, { method: 'POST', body: toWire({ tenant, text, params, script }) });
    const body = await response.text();
    if (!response.ok) throw new Error(`PGlite window: ${JSON.parse(body).message}`);
    return fromWire(body);
  };
  const sql = (tenant: string | null): Sql => ({
    query: async (text, params) => (await send(tenant, text, params, false)) as { rows: never[] },
    exec: async (script) => (await send(tenant, script, undefined, true)) as Array<{ rows: Record<string, unknown>[] }>,
  });
  return {
    transaction: (tenant, work) => work(sql(tenant)),
    single: (tenant, work) => work(sql(tenant)),
    ownerTransaction: (work) => work(sql(null)),
    ping: async () => void (await send(null, 'SELECT 1', undefined, false)),
    close: async () => {},
  };
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
