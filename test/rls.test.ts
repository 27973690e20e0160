import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import type { Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { insertCheckpoint } from '../src/db/checkpoints.ts';
import { appendUpdates } from '../src/db/updates.ts';
import { parseDocumentName } from '../src/documents/name.ts';
import { createStorage, postgresUrl, type TestStorage } from './support/database.ts';
import { openTestDatabase } from './support/inspect.ts';

const backends = [
  { kind: 'pglite' as const, reason: '' },
  { kind: 'postgres' as const, reason: postgresUrl ? '' : 'TEST_DATABASE_URL is not set' },
];

function someUpdate(text: string): Uint8Array {
  const doc = new Y.Doc();
  doc.getText('notes').insert(0, text);
  return Y.encodeStateAsUpdate(doc);
}

describe.each(backends)('row-level security on $kind', ({ kind, reason }) => {
  let storage: TestStorage;
  let db: Database;

  beforeAll(async () => {
    if (reason) return;
    storage = await createStorage(kind);
    db = await openTestDatabase(storage);
    await migrate(db);
    for (const tenant of ['tenant-a', 'tenant-b']) {
      const document = parseDocumentName(`${tenant}/quote/q1`);
      await db.transaction(tenant, async (sql) => {
        await appendUpdates(sql, [{ document, update: someUpdate(tenant), userId: 'u1', origin: 'client', receivedAt: new Date() }]);
        await insertCheckpoint(sql, document.name, { seq: 1, state: someUpdate(tenant) });
      });
    }
  });
  afterAll(async () => {
    await db?.close();
    await storage?.drop();
  });

  it('a query as the runtime role with tenant A set sees no row of tenant B', async ({ skip }) => {
    skip(!!reason, reason);
    for (const table of ['documents', 'document_updates', 'document_checkpoints']) {
      const tenants = await db.transaction('tenant-a', async (sql) => (await sql.query<{ tenant_id: string }>(`SELECT tenant_id FROM ${table}`)).rows);
      expect(tenants.map((row) => row.tenant_id)).toEqual(['tenant-a']);
    }
    const byName = await db.transaction('tenant-a', async (sql) => (await sql.query(`SELECT * FROM document_updates WHERE name = 'tenant-b/quote/q1'`)).rows);
    expect(byName).toEqual([]);
  });

  it('an insert for tenant B inside tenant A\'s transaction is refused', async ({ skip }) => {
    skip(!!reason, reason);
    await expect(
      db.transaction('tenant-a', (sql) =>
        sql.query(`INSERT INTO documents (tenant_id, name, kind, doc_id) VALUES ('tenant-b', 'tenant-b/quote/q9', 'quote', 'q9')`),
      ),
    ).rejects.toThrow(/row-level security/);
  });

  it('the update log is append-only for the runtime role', async ({ skip }) => {
    skip(!!reason, reason);
    await expect(db.transaction('tenant-a', (sql) => sql.query('UPDATE document_updates SET user_id = $1', ['mallory']))).rejects.toThrow(/permission denied/);
    await expect(db.transaction('tenant-a', (sql) => sql.query('DELETE FROM document_updates'))).rejects.toThrow(/permission denied/);
  });

  it('RLS is enabled and forced on every table, and the runtime role owns none', async ({ skip }) => {
    skip(!!reason, reason);
    const tables = await db.ownerTransaction(async (sql) =>
      (await sql.query<{ relname: string; relrowsecurity: boolean; relforcerowsecurity: boolean; owner: string }>(
        `SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner) AS owner
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r'`,
      )).rows,
    );
    expect(tables.map((t) => t.relname).sort()).toEqual(expect.arrayContaining(['document_checkpoints', 'document_updates', 'documents']));
    for (const table of tables) {
      expect(table, table.relname).toMatchObject({ relrowsecurity: true, relforcerowsecurity: true });
      expect(table.owner).not.toBe('concord_app');
    }
    const role = await db.transaction('tenant-a', async (sql) => (await sql.query<{ current_user: string }>('SELECT current_user')).rows[0]!.current_user);
    expect(role).toBe('concord_app');
  });

  it('without a tenant set, the runtime role sees nothing', async ({ skip }) => {
    skip(!!reason, reason);
    const rows = await db.transaction('', async (sql) => (await sql.query('SELECT * FROM documents')).rows);
    expect(rows).toEqual([]);
  });
});
