import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { runTogether, type Database } from '../src/db/database.ts';
import { insertCheckpoint } from '../src/db/checkpoints.ts';
import { claimClients } from '../src/db/client-owners.ts';
import { appendUpdates } from '../src/db/updates.ts';
import { insertFieldChanges } from '../src/db/field-changes.ts';
import { kindOf, parseDocumentName } from '../src/documents/kinds.ts';
import { replaceTables } from '../src/projection/tables.ts';
import { insertEvents } from '../src/db/events.ts';
import { leaseSubscription } from '../src/db/subscriptions.ts';
import { randomUUID } from 'node:crypto';
import { DocumentReader } from '../src/projection/view.ts';
import { PostgresStorage } from '../src/storage/postgres.ts';
import { PostgresDocuments } from '../src/storage/postgres-documents.ts';
import { waitFor } from './support/clients.ts';
import { backends } from './support/database.ts';
import { suiteDatabase } from './support/inspect.ts';

const projectedTables = ['field_changes', 'quotes', 'quote_lines', 'reports', 'report_sections'];
const allTables = ['documents', 'document_updates', 'document_checkpoints', 'document_clients', 'change_events', 'event_feeds', 'event_subscriptions', ...projectedTables];

/** Rows in every projected table for one document of each kind, written as the server writes them. */
async function project(db: Database, tenant: string): Promise<void> {
  for (const [kind, fill] of [
    ['quote', (doc: Y.Doc) => doc.getArray('lines').push([new Y.Map([['id', 'l1'], ['quantity', 1]])])],
    ['report', (doc: Y.Doc) => doc.getArray('sections').push([new Y.Map<unknown>([['id', 's1'], ['body', new Y.XmlFragment()]])])],
  ] as const) {
    const document = parseDocumentName(`${tenant}/${kind}/p1`);
    const doc = new Y.Doc();
    fill(doc);
    await db.transaction(tenant, async (sql) => {
      await appendUpdates(sql, [{ document, update: Y.encodeStateAsUpdate(doc), userId: 'u1', origin: 'client', receivedAt: new Date() }]);
      await claimClients(sql, [{ name: document.name, client: doc.clientID, userId: 'u1', origin: 'client' }]);
      await replaceTables(sql, document, new DocumentReader(kindOf(kind), doc, 'p1').rows(), 1);
      await runTogether(sql, [
        insertFieldChanges([
          { name: document.name, seq: 1, first_seq: 1, entity: kind, entity_id: 'p1', field: 'title', action: 'update', old_value: null, new_value: 'x', user_id: 'u1', changed_at: new Date().toISOString() },
        ])!,
        insertEvents([{ id: randomUUID(), type: 'document.created', name: document.name, seqFirst: 1, seqLast: 1, actor: 'u1', origin: 'client', occurredAt: new Date(), data: {} }])!,
      ]);
      await leaseSubscription(sql, 'nats', 'instance-1', 10_000);
    });
  }
}


function someUpdate(text: string): Uint8Array {
  const doc = new Y.Doc();
  doc.getText('notes').insert(0, text);
  return Y.encodeStateAsUpdate(doc);
}

describe.each(backends)('row-level security on $kind', ({ kind, reason }) => {
  let db: Database;
  suiteDatabase(kind, reason, async (opened) => {
    db = opened;
    for (const tenant of ['tenant-a', 'tenant-b']) {
      const document = parseDocumentName(`${tenant}/quote/q1`);
      await db.transaction(tenant, async (sql) => {
        await appendUpdates(sql, [{ document, update: someUpdate(tenant), userId: 'u1', origin: 'client', receivedAt: new Date() }]);
        await insertCheckpoint(sql, document.name, { seq: 1, state: someUpdate(tenant) });
      });
      await project(db, tenant);
    }
  });

  it('a query as the runtime role with tenant A set sees no row of tenant B', async ({ skip }) => {
    skip(!!reason, reason);
    for (const table of allTables) {
      const tenants = await db.transaction('tenant-a', async (sql) => (await sql.query<{ tenant_id: string }>(`SELECT DISTINCT tenant_id FROM ${table}`)).rows);
      expect(tenants.map((row) => row.tenant_id), table).toEqual(['tenant-a']);
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
    // The audit too, but for extending an open burst's end (seq, new text, time).
    await expect(db.transaction('tenant-a', (sql) => sql.query('UPDATE field_changes SET user_id = $1', ['mallory']))).rejects.toThrow(/permission denied/);
    await expect(db.transaction('tenant-a', (sql) => sql.query('DELETE FROM field_changes'))).rejects.toThrow(/permission denied/);
    // Nor can an event be changed or taken back.
    await expect(db.transaction('tenant-a', (sql) => sql.query('UPDATE change_events SET actor = $1', ['mallory']))).rejects.toThrow(/permission denied/);
    await expect(db.transaction('tenant-a', (sql) => sql.query('DELETE FROM change_events'))).rejects.toThrow(/permission denied/);
    // A clientID's owner never changes.
    await expect(db.transaction('tenant-a', (sql) => sql.query('UPDATE document_clients SET user_id = $1', ['mallory']))).rejects.toThrow(/permission denied/);
    await expect(db.transaction('tenant-a', (sql) => sql.query('DELETE FROM document_clients'))).rejects.toThrow(/permission denied/);
  });

  it('a logged update or audit row names a document that exists, which then is neither deleted nor renamed', async ({ skip }) => {
    skip(!!reason, reason);
    const missing = 'tenant-a/quote/never-created';
    const refused = { code: '23503' };
    await expect(
      db.transaction('tenant-a', (sql) =>
        sql.query(`INSERT INTO document_updates (tenant_id, name, seq, update, user_id, origin) VALUES ('tenant-a', $1, 1, '\\x00', 'u1', 'client')`, [missing]),
      ),
    ).rejects.toMatchObject(refused);
    // One row of the statement naming a missing document refuses the statement.
    const auditRow = (name: string) => ({ name, seq: 1, first_seq: 1, entity: 'quote', entity_id: 'q1', field: 'title', action: 'update' as const, old_value: null, new_value: 'x', user_id: 'u1', changed_at: new Date().toISOString() });
    await expect(db.transaction('tenant-a', (sql) => runTogether(sql, [insertFieldChanges([auditRow('tenant-a/quote/q1'), auditRow(missing)])!]))).rejects.toMatchObject(refused);
    await db.transaction('tenant-a', (sql) => runTogether(sql, [insertFieldChanges([auditRow('tenant-a/quote/q1')])!]));

    // A document with a logged update only (no checkpoint, event or owner row that would refuse on its own).
    const logged = parseDocumentName('tenant-a/quote/logged-only');
    await db.transaction('tenant-a', (sql) => appendUpdates(sql, [{ document: logged, update: someUpdate('x'), userId: 'u1', origin: 'client', receivedAt: new Date() }]));
    await expect(db.transaction('tenant-a', (sql) => sql.query(`UPDATE documents SET name = 'tenant-a/quote/renamed', doc_id = 'renamed' WHERE name = $1`, [logged.name]))).rejects.toMatchObject(refused);
    // The runtime role may not delete a document at all: the owner's delete is what the check refuses.
    const deleteAsOwner = (name: string) =>
      db.ownerTransaction(async (sql) => {
        await sql.query(`SELECT set_config('app.tenant_id', 'tenant-a', true)`);
        return (await sql.query('DELETE FROM documents WHERE name = $1 RETURNING name', [name])).rows;
      });
    await expect(deleteAsOwner(logged.name)).rejects.toMatchObject(refused);
    // A document nothing names may go (so the check is not a blanket refusal).
    await db.transaction('tenant-a', (sql) => sql.query(`INSERT INTO documents (tenant_id, name, kind, doc_id) VALUES ('tenant-a', 'tenant-a/quote/empty', 'quote', 'empty')`));
    expect(await deleteAsOwner('tenant-a/quote/empty')).toEqual([{ name: 'tenant-a/quote/empty' }]);
    expect(await db.transaction('tenant-a', async (sql) => (await sql.query('SELECT version FROM documents WHERE name = $1', [logged.name])).rows)).toEqual([{ version: 1 }]);
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
    expect(tables.map((t) => t.relname).sort()).toEqual(expect.arrayContaining(allTables));
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

  describe('a transaction in one message (Database.single)', () => {
    it('sees its tenant\'s rows only, and leaves neither role nor tenant on the connection', async ({ skip }) => {
      skip(!!reason, reason);
      for (const tenant of ['tenant-a', 'tenant-b']) {
        const tenants = await db.single(tenant, async (sql) => (await sql.query<{ tenant_id: string }>('SELECT DISTINCT tenant_id FROM document_updates')).rows);
        expect(tenants.map((row) => row.tenant_id)).toEqual([tenant]);
        // The pool hands the connection just released out again first.
        const after = await db.ownerTransaction(async (sql) => (await sql.query<{ role: string; tenant: string | null }>("SELECT current_user AS role, nullif(current_setting('app.tenant_id', true), '') AS tenant")).rows[0]!);
        expect(after.tenant).toBeNull();
        expect(after.role).not.toBe('concord_app');
      }
    });

    it('commits its statements together or not at all', async ({ skip }) => {
      skip(!!reason, reason);
      const inserts = (second: string) =>
        db.single('tenant-a', (sql) =>
          sql.exec(`INSERT INTO documents (tenant_id, name, kind, doc_id) VALUES (current_tenant(), 'tenant-a/quote/one-message', 'quote', 'one-message');
            INSERT INTO documents (tenant_id, name, kind, doc_id) VALUES (${second}, 'tenant-a/quote/one-message-2', 'quote', 'one-message-2')`),
        );
      const names = () => db.transaction('tenant-a', async (sql) => (await sql.query<{ name: string }>("SELECT name FROM documents WHERE name LIKE 'tenant-a/quote/one-message%' ORDER BY name")).rows.map((row) => row.name));
      await expect(inserts("'tenant-b'")).rejects.toThrow(/row-level security/);
      expect(await names()).toEqual([]);
      await inserts('current_tenant()');
      expect(await names()).toEqual(['tenant-a/quote/one-message', 'tenant-a/quote/one-message-2']);
    });

    it('a document\'s load waits for a commit under way on the document and reads what it left: version, checkpoint, tail and tables', async ({ skip }) => {
      skip(!!reason, reason);
      const document = parseDocumentName('tenant-a/quote/racing-load');
      const doc = new Y.Doc();
      const edit = (text: string) => {
        const before = Y.encodeStateVector(doc);
        doc.getText('notes').insert(0, text);
        return Y.encodeStateAsUpdate(doc, before);
      };
      const first = edit('a');
      await db.transaction('tenant-a', async (sql) => {
        await appendUpdates(sql, [{ document, update: first, userId: 'u1', origin: 'client', receivedAt: new Date() }]);
        await insertCheckpoint(sql, document.name, { seq: 1, state: first });
      });
      // A commit that logged its update and wrote its tables holds the document's row until it commits.
      const second = edit('b');
      let logged!: () => void;
      let release!: () => void;
      const written = new Promise<void>((resolve) => (logged = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      const committing = db.transaction('tenant-a', async (sql) => {
        await appendUpdates(sql, [{ document, update: second, userId: 'u1', origin: 'client', receivedAt: new Date() }]);
        await replaceTables(sql, document, new DocumentReader(kindOf('quote'), doc, document.id).rows(), 2);
        logged();
        await released;
      });
      await written;
      const loading = new PostgresDocuments(db).loadForServing(document);
      // PGlite runs one transaction at a time: there the load simply comes after the commit.
      if (kind === 'postgres') {
        const waiting = () => db.ownerTransaction(async (sql) => Number((await sql.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rows[0]!.n));
        await waitFor('the load waiting for the document\'s row', async () => (await waiting()) > 0);
      }
      release();
      await committing;
      const loaded = await loading;
      expect(loaded.version).toBe(2);
      expect(loaded.checkpoint?.seq).toBe(1);
      expect(Buffer.from(loaded.checkpoint!.state)).toEqual(Buffer.from(first));
      expect(loaded.tail.map(({ seq, update }) => [seq, Buffer.from(update)])).toEqual([[2, Buffer.from(second)]]);
      expect(loaded.tablesBehind).toBe(false);
    });

    it('a load while commits and checkpoints land reads a whole log every time: the version, its checkpoint and every update after it', async ({ skip }) => {
      skip(!!reason, reason);
      const document = parseDocumentName('tenant-a/quote/busy-load');
      const storage = new PostgresStorage(db);
      const doc = new Y.Doc();
      const texts = [''];
      const writing = (async () => {
        for (let seq = 1; seq <= 150; seq++) {
          const before = Y.encodeStateVector(doc);
          doc.getText('notes').insert(0, String(seq % 10));
          texts.push(doc.getText('notes').toString());
          await db.transaction('tenant-a', (sql) => appendUpdates(sql, [{ document, update: Y.encodeStateAsUpdate(doc, before), userId: 'u1', origin: 'client', receivedAt: new Date() }]));
          if (seq % 10 === 0) await db.transaction('tenant-a', (sql) => insertCheckpoint(sql, document.name, { seq, state: Y.encodeStateAsUpdate(doc) }));
        }
      })();
      let loads = 0;
      let done = false;
      void writing.finally(() => (done = true));
      while (!done) {
        const loaded = await storage.load(document);
        if (!loaded) continue;
        loads++;
        const replayed = new Y.Doc();
        if (loaded.checkpoint) Y.applyUpdate(replayed, loaded.checkpoint.state);
        for (const { update } of loaded.tail) Y.applyUpdate(replayed, update);
        expect(loaded.tail.map(({ seq }) => seq)).toEqual(Array.from({ length: loaded.tail.length }, (_, index) => (loaded.checkpoint?.seq ?? 0) + index + 1));
        expect(replayed.getText('notes').toString()).toBe(texts[loaded.version]);
      }
      await writing;
      expect(loads).toBeGreaterThan(0);
    });

    it('refuses a second message and bytes as parameters, sending neither', async ({ skip }) => {
      skip(!!reason, reason);
      await expect(
        db.single('tenant-a', async (sql) => {
          await sql.query('SELECT 1');
          await sql.query("INSERT INTO documents (tenant_id, name, kind, doc_id) VALUES (current_tenant(), 'tenant-a/quote/second-message', 'quote', 'x')");
        }),
      ).rejects.toThrow(/second/);
      await expect(db.single('tenant-a', (sql) => sql.query('SELECT $1::bytea', [new Uint8Array([1])]))).rejects.toThrow(/bytes/);
      const written = await db.transaction('tenant-a', async (sql) => (await sql.query("SELECT name FROM documents WHERE name = 'tenant-a/quote/second-message'")).rows);
      expect(written).toEqual([]);
    });
  });
});
