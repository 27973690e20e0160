import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { acknowledged, connect, refusal, synced, waitFor, type Client } from './support/clients.ts';
import { createStorage, postgresSkip } from './support/database.ts';
import { loggedUpdates, openTestDatabase } from './support/inspect.ts';
import { ServerProcess } from './support/server.ts';
import { TcpProxy } from './support/tcp-proxy.ts';
import { replay } from '../src/persistence/replay.ts';
import { AmbiguousCommitError } from '../src/db/database.ts';
import { createPostgresDatabase } from '../src/db/postgres.ts';
import { createLogger } from '../src/log.ts';
import { token } from './support/tokens.ts';
import { pushNumbered } from './support/documents.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The numbers the logged updates append (pushNumbered), replayed in seq order. */
function appendedValues(updates: Uint8Array[]): number[] {
  const doc = new Y.Doc();
  const values: number[] = [];
  doc.getArray<Y.Map<unknown>>('lines').observe((event) => {
    for (const item of event.changes.added) values.push(...(item.content.getContent() as Array<Y.Map<unknown>>).map((line) => line.get('quantity') as number));
  });
  for (const update of updates) Y.applyUpdate(doc, update);
  return values;
}

/** A fresh database, and the URL that reaches it only through a proxy the test can cut. */
async function databaseBehindProxy() {
  const storage = await createStorage('postgres');
  cleanups.push(() => storage.drop());
  const target = new URL(storage.databaseUrl!);
  const proxy = await new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) }).listen();
  cleanups.push(() => proxy.close());
  target.hostname = '127.0.0.1';
  target.port = String(proxy.port);
  return { storage, proxy, url: target.toString() };
}

/** A server on a fresh database that it reaches only through a proxy the test can cut. */
async function serverBehindProxy(env: Record<string, string> = {}) {
  const { storage, proxy, url } = await databaseBehindProxy();
  const server = await new ServerProcess({ ...storage.env, ...env, DATABASE_URL: url }).start();
  cleanups.push(() => server.stop('SIGKILL'));
  return { storage, proxy, server };
}

describe('with a real PostgreSQL', () => {
  it('Postgres going away: no acknowledgement, /readyz 503, server up; back: every edit logged once, in order', async ({ skip }) => {
    skip(!!postgresSkip, postgresSkip);
    const { storage, proxy, server } = await serverBehindProxy();

    const name = 'acme/quote/outage';
    const alice = connect(server.wsUrl, name, await token({ sub: 'alice' }));
    const bob = connect(server.wsUrl, name, await token({ sub: 'bob' }));
    await Promise.all([synced(alice), synced(bob)]);
    pushNumbered(alice.doc, 0);
    await acknowledged(alice);

    proxy.cut();
    for (let i = 1; i <= 30; i++) pushNumbered(alice.doc, i);
    // Broadcasting does not wait for Postgres: bob sees every edit while it is away.
    await waitFor('edits at bob', () => bob.doc.getArray('lines').length === 31);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(alice.provider.unsyncedChanges).toBeGreaterThan(0);
    const notReady = await server.get('/readyz');
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({ error: { code: 'not-ready', message: expect.stringContaining('postgres') }, checks: { postgres: 'down' } });
    expect((await server.get('/healthz')).status).toBe(200);
    expect(await server.get('/metrics').then((r) => r.text())).toMatch(/concord_persistence_errors_total\{operation="append-updates"\} [1-9]/);

    proxy.restore();
    await acknowledged(alice, 20_000);
    expect((await server.get('/readyz')).status).toBe(200);

    const db = await openTestDatabase(storage);
    cleanups.push(() => db.close());
    const rows = await loggedUpdates(db, 'acme', name);
    // One row per edit (each edit is one update): a batch written twice would show here.
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: 31 }, (_, i) => i + 1));
    expect(appendedValues(rows.map((row) => row.update))).toEqual(Array.from({ length: 31 }, (_, i) => i));
    alice.provider.destroy();
    bob.provider.destroy();
  });

  it('a document holding uncommitted updates stays loaded until they are committed; loading meanwhile is refused clearly', async ({ skip }) => {
    skip(!!postgresSkip, postgresSkip);
    const { proxy, server } = await serverBehindProxy();
    const loadedDocuments = async () => (await server.metrics()).get('concord_loaded_documents');

    const name = 'acme/quote/unload';
    const alice = connect(server.wsUrl, name, await token({ sub: 'alice' }));
    await synced(alice);
    proxy.cut();
    alice.doc.getMap('quote').set('title', 'written while Postgres was away');
    await new Promise((resolve) => setTimeout(resolve, 300));
    alice.provider.destroy();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await loadedDocuments()).toBe(1);
    expect(await refusal(server.wsUrl, 'acme/quote/another', await token())).toBe('storage-unavailable');

    proxy.restore();
    await waitFor('unload after commit', async () => (await loadedDocuments()) === 0, 20_000);
    const bob = connect(server.wsUrl, name, await token({ sub: 'bob' }));
    await synced(bob);
    expect(bob.doc.getMap('quote').get('title')).toBe('written while Postgres was away');
    bob.provider.destroy();
  });

  it('a client that reconnects while Postgres is away gets no acknowledgement until its edits are committed', async ({ skip }) => {
    skip(!!postgresSkip, postgresSkip);
    const { proxy, server } = await serverBehindProxy();
    const name = 'acme/quote/reconnect-in-outage';
    const alice = connect(server.wsUrl, name, await token({ sub: 'alice' }));
    await synced(alice);
    proxy.cut();
    alice.doc.getMap('quote').set('title', 'edited offline from Postgres');
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The resent state changes nothing in memory; it must still wait for the commit.
    alice.provider.disconnect();
    await waitFor('disconnected', () => alice.provider.configuration.websocketProvider.status === 'disconnected');
    await alice.provider.connect();
    await synced(alice);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(alice.provider.unsyncedChanges).toBeGreaterThan(0);

    proxy.restore();
    await acknowledged(alice, 20_000);
    await server.stop('SIGKILL');
    await server.start();
    const bob = connect(server.wsUrl, name, await token({ sub: 'bob' }));
    await synced(bob);
    expect(bob.doc.getMap('quote').get('title')).toBe('edited offline from Postgres');
    alice.provider.destroy();
    bob.provider.destroy();
  });

  it('past MAX_BACKLOG_BYTES of uncommitted updates, new writes are refused, not queued; the accepted ones land', async ({ skip }) => {
    skip(!!postgresSkip, postgresSkip);
    const { storage, proxy, server } = await serverBehindProxy({ MAX_BACKLOG_BYTES: '4096' });
    const name = 'acme/quote/backlog';
    const alice = connect(server.wsUrl, name, await token({ sub: 'alice' }));
    await synced(alice);
    proxy.cut();
    const notes = alice.doc.getText('notes');
    for (let i = 0; i < 10 && !alice.closeReasons.length; i++) {
      notes.insert(notes.length, String(i).repeat(1_000));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(alice.closeReasons).toContain('storage-unavailable');
    expect((await server.get('/healthz')).status).toBe(200);

    proxy.restore();
    // What was accepted before the limit is committed; the rest stayed with alice.
    const db = await openTestDatabase(storage);
    cleanups.push(() => db.close());
    const committed = await waitFor('the backlog committed', async () => {
      const text = replay(null, await loggedUpdates(db, 'acme', name)).getText('notes').toString();
      return text.length >= 4_000 && text;
    }, 20_000);
    expect(committed.length).toBeLessThan(notes.length);
    expect(notes.toString().startsWith(committed)).toBe(true);
    const bob = connect(server.wsUrl, name, await token({ sub: 'bob' }));
    await synced(bob, 20_000);
    expect(bob.closeReasons).toEqual([]);
    expect(bob.doc.getText('notes').toString()).toBe(committed);
    alice.provider.destroy();
    bob.provider.destroy();
  });

  it('two instances writing one document at once: seq gap-free, nothing doubled', async ({ skip }) => {
    skip(!!postgresSkip, postgresSkip);
    const storage = await createStorage('postgres');
    cleanups.push(() => storage.drop());
    const servers = await Promise.all([new ServerProcess(storage.env).start(), new ServerProcess(storage.env).start()]);
    for (const server of servers) cleanups.push(() => server.stop('SIGKILL'));

    const name = 'acme/quote/two-instances';
    const writers: Client[] = [];
    for (const [index, server] of servers.entries()) {
      for (const user of ['u1', 'u2']) writers.push(connect(server.wsUrl, name, await token({ sub: `${user}-on-${index}` })));
    }
    await Promise.all(writers.map((writer) => synced(writer)));
    const perWriter = 100;
    writers.forEach((writer, w) => {
      for (let i = 0; i < perWriter; i++) pushNumbered(writer.doc, w * 1000 + i);
    });
    await Promise.all(writers.map((writer) => acknowledged(writer, 30_000)));

    const db = await openTestDatabase(storage);
    cleanups.push(() => db.close());
    const rows = await loggedUpdates(db, 'acme', name);
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: writers.length * perWriter }, (_, i) => i + 1));
    const logged = appendedValues(rows.map((row) => row.update)).sort((a, b) => a - b);
    const expected = writers.flatMap((_, w) => Array.from({ length: perWriter }, (_, i) => w * 1000 + i)).sort((a, b) => a - b);
    expect(logged).toEqual(expected);
    writers.forEach((writer) => writer.provider.destroy());
  });

  it('a query Postgres does not answer fails after the query timeout, nothing more goes out behind it, its connection is not used again, and an unanswered COMMIT is ambiguous', async ({ skip }) => {
    skip(!!postgresSkip, postgresSkip);
    const { proxy, url } = await databaseBehindProxy();
    const db = createPostgresDatabase(url, createLogger('silent'), { queryTimeoutMs: 300 });
    cleanups.push(() => db.close());
    const answer = (n: number) => db.ownerTransaction(async (sql) => (await sql.query<{ n: number }>('SELECT $1::int AS n', [n])).rows);
    expect(await answer(1)).toEqual([{ n: 1 }]);

    // Unanswered, the query fails; nothing more goes out behind it: the transaction's next statement fails at once, the same way.
    proxy.stall();
    let [first, second]: unknown[] = [];
    const refused = db.ownerTransaction(async (sql) => {
      first = await sql.query('SELECT 1').catch((error: unknown) => error);
      second = await sql.query('SELECT 2').catch((error: unknown) => error);
      throw first;
    });
    await expect(refused).rejects.toMatchObject({ code: 'postgres-timeout' });
    expect(second).toBe(first);

    // The stalled connection lost its query: were it used again, it would never answer.
    proxy.restore();
    expect(await answer(2)).toEqual([{ n: 2 }]);

    // Not even COMMIT goes out behind it, when the work went on regardless: the COMMIT fails with the same error.
    proxy.stall();
    let unansweredQuery: unknown;
    const goneOn = db.ownerTransaction(async (sql) => {
      unansweredQuery = await sql.query('SELECT 1').catch((error: unknown) => error);
    });
    await expect(goneOn).rejects.toBeInstanceOf(AmbiguousCommitError);
    expect(((await goneOn.catch((error: unknown) => error)) as Error).cause).toBe(unansweredQuery);
    proxy.restore();
    expect(await answer(3)).toEqual([{ n: 3 }]);

    // A COMMIT left unanswered may have committed: its outcome is unknown, for the caller to look up.
    const unanswered = db.ownerTransaction(async (sql) => {
      await sql.query('SELECT 1');
      proxy.stall();
      return sql.execThenCommit!(['SELECT 2']);
    });
    await expect(unanswered).rejects.toBeInstanceOf(AmbiguousCommitError);
    proxy.restore();
    expect(await answer(4)).toEqual([{ n: 4 }]);
  });

  it('runs as a login role that owns nothing, with the migrations applied by another', async ({ skip }) => {
    skip(!!postgresSkip, postgresSkip);
    const storage = await createStorage('postgres');
    cleanups.push(() => storage.drop());
    const ownerUrl = storage.databaseUrl!;
    const role = `concord_server_${randomBytes(4).toString('hex')}`;
    const owner = new pg.Client({ connectionString: ownerUrl });
    await owner.connect();
    cleanups.push(async () => {
      await owner.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
      await owner.end();
    });
    await owner.query(`CREATE ROLE ${role} LOGIN PASSWORD 'server-secret'`);
    const runtimeUrl = new URL(ownerUrl);
    runtimeUrl.username = role;
    runtimeUrl.password = 'server-secret';

    // Refused: the role may not create tables, so it cannot migrate for itself.
    const { env } = storage;
    const refused = await new ServerProcess({ ...env, DATABASE_URL: runtimeUrl.toString() }).start().catch((error) => error);
    expect(String(refused)).toMatch(/could not start/);

    const server = new ServerProcess({ ...env, DATABASE_URL: runtimeUrl.toString(), MIGRATION_DATABASE_URL: ownerUrl });
    // Membership in the runtime role comes from the administrator, once the migrations created it.
    await new ServerProcess({ ...env }).start().then((migrated) => migrated.stop());
    await owner.query(`GRANT concord_app TO ${role}`);
    await server.start();
    cleanups.push(() => server.stop('SIGKILL'));

    const alice = connect(server.wsUrl, 'acme/quote/least-privilege', await token());
    await synced(alice);
    alice.doc.getMap('quote').set('title', 'written by a role that owns nothing');
    await acknowledged(alice);
    alice.provider.destroy();
    const { rows } = await owner.query(
      `SELECT count(*)::int AS owned FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = $1`,
      [role],
    );
    expect(rows[0].owned).toBe(0);
    // The owner reads every tenant's log through its own policies (schema/004: history retention runs as it).
    const logged = await owner.query(`SELECT user_id FROM document_updates WHERE name = 'acme/quote/least-privilege'`);
    expect(logged.rows).toEqual([{ user_id: 'alice' }]);
  });
});
