import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import type { Database } from '../src/db/database.ts';
import { appendUpdates } from '../src/db/updates.ts';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { renderDocument } from '../src/documents/service.ts';
import { runCli } from './support/cli.ts';
import { acknowledged, connect, synced, waitFor } from './support/clients.ts';
import { createReadableStorage, type TestStorage } from './support/database.ts';
import { addLine, api, lineById } from './support/documents.ts';
import { loggedUpdates, openTestDatabase, rowsOf } from './support/inspect.ts';
import { ServerProcess } from './support/server.ts';
import { token } from './support/tokens.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const CHECKPOINT_EVERY = 10;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp(env: Record<string, string> = {}) {
  const storage = await createReadableStorage();
  cleanups.push(() => storage.drop());
  const server = await new ServerProcess({ ...storage.env, CHECKPOINT_EVERY: String(CHECKPOINT_EVERY), ...env }).start();
  cleanups.push(() => server.stop('SIGKILL'));
  const db = await openTestDatabase(storage);
  cleanups.push(() => db.close());
  return { storage, server, db };
}

/** A quote edited `count` times `daysAgo` days ago (written straight into the log, as an old document would be). */
async function writeOldHistory(db: Database, name: string, count: number, daysAgo: number): Promise<void> {
  const document = parseDocumentName(name);
  const source = new Y.Doc();
  const updates: Uint8Array[] = [];
  source.on('update', (update: Uint8Array) => updates.push(update));
  addLine(source, { id: 'l1', sku: 'OLD', quantity: 0, unitPrice: 1 });
  for (let index = 1; index < count; index++) lineById(source, 'l1')!.set('quantity', index);
  const start = Date.now() - daysAgo * DAY_MS;
  await db.transaction(document.tenant, (sql) =>
    appendUpdates(sql, updates.map((update, index) => ({ document, update, userId: 'old-timer', origin: 'client' as const, receivedAt: new Date(start + index * 1000) }))),
  );
}

/** Every version's JSON form, replayed in this process from the log as it is now. */
async function allVersions(db: Database, name: string): Promise<unknown[]> {
  const document = parseDocumentName(name);
  const doc = new Y.Doc();
  const versions: unknown[] = [renderDocument(document, doc)];
  for (const row of await loggedUpdates(db, document.tenant, name)) {
    Y.applyUpdate(doc, row.update);
    versions.push(renderDocument(document, doc));
  }
  return versions;
}

function prune(storage: TestStorage, ...args: string[]) {
  return runCli('prune', args, storage.env);
}

describe('history retention', () => {
  it('npm run prune deletes old updates down to checkpoints; the API says which versions stay exact; the document loads and restores as before', async () => {
    const { storage, server, db } = await setUp();
    // On the embedded database `npm run prune` refuses while the server runs (test/cli.test.ts): the server stops for it.
    const pruneBesideServer = async (...args: string[]) => {
      if (storage.kind === 'postgres') return prune(storage, ...args);
      await server.stop();
      try {
        return await prune(storage, ...args);
      } finally {
        await server.start();
      }
    };
    const name = 'acme/quote/aged';
    const admin = await token({ sub: 'ada', role: 'admin' });
    await writeOldHistory(db, name, 35, 60);
    // Recent edits on top, by a real client.
    const alice = connect(server.wsUrl, name, await token({ sub: 'alice' }));
    cleanups.push(async () => alice.provider.destroy());
    await synced(alice);
    for (let quantity = 100; quantity < 105; quantity++) lineById(alice.doc, 'l1')!.set('quantity', quantity);
    await acknowledged(alice);
    // Reading an old version writes the checkpoints up to it, at 10 and 20.
    expect((await api(server.httpUrl, admin, 'GET', '/api/documents/quote/aged/versions/25')).status).toBe(200);
    const expected = await allVersions(db, name);
    expect(expected).toHaveLength(41);

    const refused = await prune(storage);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--older-than-days/);
    const { code, stdout } = await pruneBesideServer('--older-than-days', '30');
    expect({ code, stdout }).toMatchObject({ code: 0, stdout: expect.stringMatching(/pruned 34 update\(s\) .* from 1 document/) });

    const remaining = await rowsOf<{ seq: number }>(db, 'acme', 'SELECT seq FROM document_updates WHERE name = $1 ORDER BY seq', [name]);
    expect(remaining.map((row) => row.seq)).toEqual([35, 36, 37, 38, 39, 40]);
    const history = await api(server.httpUrl, admin, 'GET', '/api/documents/quote/aged/history');
    expect(history.body).toMatchObject({ version: 40, exactFrom: 35, exactCheckpoints: [10, 20] });
    expect(history.body.updates.map((update: any) => update.seq)).toEqual([35, 36, 37, 38, 39, 40]);

    for (const seq of [10, 20, 35, 36, 40]) {
      const { status, body } = await api(server.httpUrl, admin, 'GET', `/api/documents/quote/aged/versions/${seq}`);
      expect({ seq, status }).toEqual({ seq, status: 200 });
      expect(body.content).toEqual(expected[seq]);
    }
    for (const seq of [1, 15, 30, 34]) {
      const { status, body } = await api(server.httpUrl, admin, 'GET', `/api/documents/quote/aged/versions/${seq}`);
      expect({ seq, status, code: body.error.code }).toEqual({ seq, status: 404, code: 'pruned' });
      expect(body.error.message).toMatch(/every version from 35 on is kept/);
    }
    const longAgo = new Date(Date.now() - 61 * DAY_MS).toISOString();
    expect((await api(server.httpUrl, admin, 'GET', `/api/documents/quote/aged/versions?at=${longAgo}`)).body.error.code).toBe('pruned');
    const oldest = new Date(Date.now() - 60 * DAY_MS + 34 * 1000 + 500).toISOString();
    expect((await api(server.httpUrl, admin, 'GET', `/api/documents/quote/aged/versions?at=${oldest}`)).body.version).toBe(35);

    // The document loads as before, and a version kept as a checkpoint can be restored.
    alice.provider.destroy();
    await waitFor('the document is unloaded', async () => (await server.metrics()).get('concord_loaded_documents') === 0);
    const bob = connect(server.wsUrl, name, await token({ sub: 'bob' }));
    cleanups.push(async () => bob.provider.destroy());
    await synced(bob);
    expect(lineById(bob.doc, 'l1')!.get('quantity')).toBe(104);
    const restored = await api(server.httpUrl, admin, 'POST', '/api/documents/quote/aged/restore', { version: 20 });
    expect(restored.body).toMatchObject({ version: 41, content: expected[20] });
    await waitFor('bob sees the restored quantity', () => lineById(bob.doc, 'l1')!.get('quantity') === 19);

    // A second run finds nothing new to prune; the runtime role still cannot delete an update.
    expect((await pruneBesideServer('--older-than-days', '30')).stdout).toMatch(/pruned 0 update/);
    await expect(db.transaction('acme', (sql) => sql.query('DELETE FROM document_updates WHERE name = $1', [name]))).rejects.toThrow(/permission denied/);
  });

  it('with HISTORY_RETENTION_DAYS the server prunes by itself, and keeps what is younger', async () => {
    const { server, db } = await setUp({ HISTORY_RETENTION_DAYS: '30' });
    await writeOldHistory(db, 'acme/quote/old', 12, 40);
    await writeOldHistory(db, 'acme/quote/young', 12, 20);
    await writeOldHistory(db, 'globex/quote/old', 12, 45);
    await server.stop();
    await server.start();
    const admin = async (tenant: string) => token({ tenant, sub: 'ada', role: 'admin' });
    const exactFrom = async (tenant: string, id: string) => (await api(server.httpUrl, await admin(tenant), 'GET', `/api/documents/quote/${id}/history`)).body.exactFrom;
    await waitFor('both tenants\' old documents are pruned', async () => (await exactFrom('acme', 'old')) === 12 && (await exactFrom('globex', 'old')) === 12);
    expect(await exactFrom('acme', 'young')).toBe(0);
    expect(server.logs).toMatch(/"code":"history-pruned"/);
  });
});
