import { afterEach, describe, expect, it } from 'vitest';
import { replay } from '../src/persistence/replay.ts';
import { latestCheckpoint } from '../src/db/checkpoints.ts';
import { readUpdates } from '../src/db/updates.ts';
import { acknowledged, connect, synced, waitFor } from './support/clients.ts';
import { createStorage, type TestStorage } from './support/database.ts';
import { addLine, numbersOf, pushNumbered } from './support/documents.ts';
import { fieldChanges, loggedUpdates, openTestDatabase, rowsOf } from './support/inspect.ts';
import { ServerProcess } from './support/server.ts';
import { token } from './support/tokens.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serverOn(storage: TestStorage, env: Record<string, string> = {}) {
  const server = await new ServerProcess({ ...storage.env, ...env }).start();
  cleanups.push(() => server.stop('SIGKILL'));
  return server;
}

async function freshStorage() {
  const storage = await createStorage();
  cleanups.push(() => storage.drop());
  return storage;
}

describe('durability', () => {
  it('a document survives a server restart', async () => {
    const storage = await freshStorage();
    const server = await serverOn(storage);
    const alice = connect(server.wsUrl, 'acme/quote/restart', await token({ sub: 'alice' }));
    await synced(alice);
    alice.doc.getMap('quote').set('title', 'Survives restarts');
    alice.doc.getText('notes').insert(0, 'Deliver by Friday');
    await acknowledged(alice);
    alice.provider.destroy();
    await server.stop('SIGTERM');
    await server.start();

    const bob = connect(server.wsUrl, 'acme/quote/restart', await token({ sub: 'bob' }));
    await synced(bob);
    expect(bob.doc.getMap('quote').get('title')).toBe('Survives restarts');
    expect(bob.doc.getText('notes').toString()).toBe('Deliver by Friday');
    bob.provider.destroy();
  });

  it('SIGKILL right after the acknowledgement loses nothing, and the log is gap-free and attributed', async () => {
    const storage = await freshStorage();
    const server = await serverOn(storage);
    const name = 'acme/quote/crash';
    const alice = connect(server.wsUrl, name, await token({ sub: 'alice' }));
    const bob = connect(server.wsUrl, name, await token({ sub: 'bob' }));
    await Promise.all([synced(alice), synced(bob)]);
    for (let i = 0; i < 200; i++) pushNumbered((i % 2 ? bob : alice).doc, i);
    await Promise.all([acknowledged(alice), acknowledged(bob)]);
    await server.stop('SIGKILL');

    await server.start();
    const carol = connect(server.wsUrl, name, await token({ sub: 'carol' }));
    await synced(carol);
    const seen = numbersOf(carol.doc);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(seen).toEqual(numbersOf(alice.doc));
    carol.provider.destroy();
    alice.provider.destroy();
    bob.provider.destroy();
    await server.stop('SIGKILL');

    const db = await openTestDatabase(storage);
    cleanups.push(() => db.close());
    const rows = await loggedUpdates(db, 'acme', name);
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: rows.length }, (_, i) => i + 1));
    expect(new Set(rows.map((row) => row.user_id))).toEqual(new Set(['alice', 'bob']));
    expect(rows.every((row) => row.origin === 'client')).toBe(true);
    // Each logged update is attributed to the user whose edits it carries.
    for (const row of rows) {
      const values = numbersOf(replay(null, rows.filter((r) => r.seq <= row.seq)));
      const before = numbersOf(replay(null, rows.filter((r) => r.seq < row.seq)));
      const added = values.filter((v) => !before.includes(v));
      expect(added.every((v) => (v % 2 ? 'bob' : 'alice') === row.user_id)).toBe(true);
    }
  });

  it('an acknowledgement means the audit rows and the tables are committed too', async () => {
    const storage = await freshStorage();
    const server = await serverOn(storage);
    const name = 'acme/quote/acked-tables';
    const alice = connect(server.wsUrl, name, await token({ sub: 'alice' }));
    await synced(alice);
    for (let i = 0; i < 20; i++) {
      alice.doc.transact(() => {
        alice.doc.getMap('quote').set('title', `Title ${i}`);
        addLine(alice.doc, { id: `l${i}`, quantity: i, unitPrice: 1.5 });
      });
    }
    await acknowledged(alice);
    await server.stop('SIGKILL');
    alice.provider.destroy();

    const db = await openTestDatabase(storage);
    cleanups.push(() => db.close());
    const [quote] = await rowsOf<Record<string, unknown>>(db, 'acme', 'SELECT title, line_count, subtotal, version FROM quotes');
    // 1.5 x (0 + 1 + ... + 19) = 285.00
    expect(quote).toEqual({ title: 'Title 19', line_count: 20, subtotal: '285.00', version: 20 });
    const changes = await fieldChanges(db, 'acme', name);
    expect(changes.filter((change) => change.field === 'title')).toHaveLength(20);
    expect(changes.filter((change) => change.action === 'create').map((change) => change.entity_id)).toEqual(Array.from({ length: 20 }, (_, i) => `l${i}`));
  });

  it('checkpoints are written in the background and a load replays only the tail after the latest', async () => {
    const storage = await freshStorage();
    const server = await serverOn(storage, { CHECKPOINT_EVERY: '25' });
    const name = 'acme/quote/checkpointed';
    const alice = connect(server.wsUrl, name, await token());
    await synced(alice);
    const notes = alice.doc.getText('notes');
    for (let i = 0; i < 120; i++) {
      notes.insert(notes.length, String(i % 10));
      if (i % 20 === 0) await acknowledged(alice);
    }
    await acknowledged(alice);
    alice.provider.destroy();
    await waitFor('checkpoints caught up', async () => (await server.metrics()).get('concord_checkpoints_under_way') === 0);
    expect((await server.metrics()).get('concord_checkpoints_written_total')).toBeGreaterThan(0);
    await server.stop('SIGTERM');

    const db = await openTestDatabase(storage);
    cleanups.push(() => db.close());
    const { checkpoint, all, tail } = await db.transaction('acme', async (sql) => {
      const checkpoint = await latestCheckpoint(sql, name);
      return { checkpoint, all: await readUpdates(sql, name, 0), tail: await readUpdates(sql, name, checkpoint?.seq ?? 0) };
    });
    expect(checkpoint).not.toBeNull();
    expect(all.length).toBeGreaterThanOrEqual(120);
    // Once idle, the tail after the latest checkpoint is shorter than CHECKPOINT_EVERY.
    expect(tail.length).toBeLessThan(25);
    // The checkpoint is exactly the state after its seq.
    const fromCheckpoint = replay(checkpoint, []).getText('notes').toString();
    const fromLog = replay(null, all.filter((u) => u.seq <= checkpoint!.seq)).getText('notes').toString();
    expect(fromCheckpoint).toBe(fromLog);
    expect(replay(checkpoint, tail).getText('notes').toString()).toBe(notes.toString());
    await db.close();
    cleanups.pop();

    await server.start();
    const bob = connect(server.wsUrl, name, await token({ sub: 'bob' }));
    await synced(bob);
    expect(bob.doc.getText('notes').toString()).toBe(notes.toString());
    bob.provider.destroy();
  });
});
