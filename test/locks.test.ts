import { Document } from '@hocuspocus/server';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { Principal } from '../src/auth/tokens.ts';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { createLogger } from '../src/log.ts';
import { DocumentLocks } from '../src/rules/locks.ts';
import { connect, synced, waitFor, type Client } from './support/clients.ts';
import { clusterFixture } from './support/cluster.ts';
import { createStorage, postgresTitle, postgresUrl } from './support/database.ts';
import { api } from './support/documents.ts';
import { openMigratedDatabase } from './support/inspect.ts';
import { RedisProcess } from './support/redis.ts';
import type { ServerProcess } from './support/server.ts';
import { serverForSuite } from './support/suite-server.ts';
import { token } from './support/tokens.ts';

interface Lock {
  target: string;
  userId: string;
  name: string | null;
  until: string;
}

const as = (sub: string, role = 'editor') => token({ sub, name: sub.toUpperCase(), role });

/** The locks the server last told `client` of (`concord:locks`), or undefined before it told any. */
function shownLocks(client: Client): Lock[] | undefined {
  return (client.stateless.filter((message) => message.type === 'concord:locks').at(-1)?.locks as Lock[] | undefined) ?? undefined;
}

/** Waits until the server told `client` that the locks are exactly these targets held by these users. */
function seesLocks(client: Client, expected: Record<string, string>): Promise<true> {
  const wanted = JSON.stringify(Object.entries(expected).sort());
  return waitFor(`locks ${wanted}`, () => {
    const locks = shownLocks(client);
    return locks !== undefined && JSON.stringify(locks.map((lock) => [lock.target, lock.userId]).sort()) === wanted;
  });
}

function refusals(client: Client): Array<Record<string, unknown>> {
  return client.stateless.filter((message) => message.type === 'concord:refused');
}

function lockOver(client: Client, target: string, ttlSeconds?: number): void {
  client.provider.sendStateless(JSON.stringify({ type: 'concord:lock', target, ...(ttlSeconds !== undefined && { ttlSeconds }) }));
}

function unlockOver(client: Client, target: string): void {
  client.provider.sendStateless(JSON.stringify({ type: 'concord:unlock', target }));
}

/** DELETE …/locks/:target (the target URL-encoded); the status. */
async function unlock(server: ServerProcess, userToken: string, path: string, target: string): Promise<number> {
  const response = await fetch(`${server.httpUrl}${path}/locks/${encodeURIComponent(target)}`, { method: 'DELETE', headers: { authorization: `Bearer ${userToken}` } });
  return response.status;
}

// What each test started, undone after it, last first.
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function open(server: ServerProcess, name: string, sub: string, role = 'editor'): Promise<Client> {
  const client = connect(server.wsUrl, name, await as(sub, role));
  cleanups.push(() => client.provider.destroy());
  await synced(client);
  return client;
}

describe('locks', () => {
  const suite = serverForSuite();

  it('an editor takes a lock (201), renews it, and another user is refused naming the holder (409); everyone may list them', async () => {
    const { server } = suite;
    const path = '/api/documents/quote/q-take';
    const alice = await as('alice');
    const taken = await api(server.httpUrl, alice, 'POST', `${path}/locks`, { target: 'line:l1', ttlSeconds: 30 });
    expect(taken.status).toBe(201);
    expect(taken.body).toEqual({ target: 'line:l1', userId: 'alice', name: 'ALICE', until: expect.any(String) });
    const until = Date.parse(taken.body.until);
    expect(until - Date.now()).toBeGreaterThan(25_000);
    expect(until - Date.now()).toBeLessThanOrEqual(31_000);

    const refused = await api(server.httpUrl, await as('bob'), 'POST', `${path}/locks`, { target: 'line:l1' });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: 'locked', target: 'line:l1', holder: { userId: 'alice', name: 'ALICE' } });
    // Another target is free; without ttlSeconds the lock holds LOCK_TTL_SECONDS (60).
    const other = await api(server.httpUrl, await as('bob'), 'POST', `${path}/locks`, { target: 'field:title' });
    expect(other.status).toBe(201);
    expect(Date.parse(other.body.until) - Date.now()).toBeGreaterThan(55_000);

    const renewed = await api(server.httpUrl, alice, 'POST', `${path}/locks`, { target: 'line:l1', ttlSeconds: 300 });
    expect(renewed.status).toBe(201);
    expect(Date.parse(renewed.body.until)).toBeGreaterThan(until + 200_000);

    const listed = await api(server.httpUrl, await as('vera', 'viewer'), 'GET', `${path}/locks`);
    expect(listed.status).toBe(200);
    expect(listed.body.locks).toEqual([
      { target: 'field:title', userId: 'bob', name: 'BOB', until: other.body.until },
      { target: 'line:l1', userId: 'alice', name: 'ALICE', until: renewed.body.until },
    ]);
    // The presence route names them too.
    const presence = await api(server.httpUrl, await as('vera', 'viewer'), 'GET', `${path}/presence`);
    expect(presence.body.locks).toEqual(listed.body.locks);
  });

  it('refuses viewers and commenters, unknown targets and a ttlSeconds over LOCK_MAX_TTL_SECONDS', async () => {
    const { server } = suite;
    const path = '/api/documents/quote/q-refuse';
    for (const role of ['viewer', 'commenter']) {
      const refused = await api(server.httpUrl, await as('carl', role), 'POST', `${path}/locks`, { target: 'line:l1' });
      expect(refused.status, role).toBe(403);
      expect(refused.body.error.code).toBe('not-allowed');
    }
    const editor = await as('alice');
    for (const target of ['line:', 'section:s1', 'row:1', 'field:nope', 'field:', 'line', 'x'.repeat(400)]) {
      const refused = await api(server.httpUrl, editor, 'POST', `${path}/locks`, { target });
      expect(refused.status, target).toBe(400);
      expect(refused.body.error.code).toBe('bad-request');
    }
    for (const ttlSeconds of [601, 0, 1.5, -3]) {
      const refused = await api(server.httpUrl, editor, 'POST', `${path}/locks`, { target: 'line:l1', ttlSeconds });
      expect(refused.status, String(ttlSeconds)).toBe(400);
    }
    expect((await api(server.httpUrl, editor, 'POST', `${path}/locks`, { target: 'line:l1', ttlSeconds: 600 })).status).toBe(201);
    // A text root is a field; a report's members are sections.
    expect((await api(server.httpUrl, editor, 'POST', `${path}/locks`, { target: 'field:notes' })).status).toBe(201);
    expect((await api(server.httpUrl, editor, 'POST', '/api/documents/report/r-refuse/locks', { target: 'section:s1' })).status).toBe(201);
    expect((await api(server.httpUrl, editor, 'POST', '/api/documents/report/r-refuse/locks', { target: 'line:l1' })).status).toBe(400);
    // Another tenant's token reaches only its own tenant's document of that name: free there.
    const elsewhere = await api(server.httpUrl, await token({ tenant: 'globex', sub: 'bob' }), 'POST', `${path}/locks`, { target: 'line:l1' });
    expect(elsewhere.status).toBe(201);
  });

  it('the holder releases, an admin breaks, anyone else is refused; every change is in the admin\'s audit log, newest first', async () => {
    const { server } = suite;
    const path = '/api/documents/invoice/i-release';
    const alice = await as('alice');
    const bob = await as('bob');
    const admin = await as('ada', 'admin');
    expect((await api(server.httpUrl, alice, 'POST', `${path}/locks`, { target: 'line:a b/c' })).status).toBe(201);
    expect((await api(server.httpUrl, alice, 'POST', `${path}/locks`, { target: 'line:a b/c' })).status).toBe(201);
    expect(await unlock(server, bob, path, 'line:a b/c')).toBe(403);
    expect(await unlock(server, alice, path, 'line:a b/c')).toBe(204);
    expect(await unlock(server, alice, path, 'line:a b/c')).toBe(404);
    expect((await api(server.httpUrl, bob, 'POST', `${path}/locks`, { target: 'line:a b/c' })).status).toBe(201);
    expect(await unlock(server, admin, path, 'line:a b/c')).toBe(204);
    expect((await api(server.httpUrl, alice, 'GET', `${path}/locks`)).body.locks).toEqual([]);

    expect((await api(server.httpUrl, alice, 'GET', `${path}/locks/log`)).status).toBe(403);
    const log = await api(server.httpUrl, admin, 'GET', `${path}/locks/log`);
    expect(log.status).toBe(200);
    expect(log.body.entries.map((entry: any) => [entry.action, entry.target, entry.holderId, entry.byId])).toEqual([
      ['broken', 'line:a b/c', 'bob', 'ada'],
      ['acquired', 'line:a b/c', 'bob', 'bob'],
      ['released', 'line:a b/c', 'alice', 'alice'],
      ['renewed', 'line:a b/c', 'alice', 'alice'],
      ['acquired', 'line:a b/c', 'alice', 'alice'],
    ]);
    expect(log.body.next).toBeNull();
    const firstPage = await api(server.httpUrl, admin, 'GET', `${path}/locks/log?limit=2`);
    expect(firstPage.body.entries.map((entry: any) => entry.action)).toEqual(['broken', 'acquired']);
    const secondPage = await api(server.httpUrl, admin, 'GET', `${path}/locks/log?limit=2&before=${firstPage.body.next}`);
    expect(secondPage.body.entries.map((entry: any) => entry.action)).toEqual(['released', 'renewed']);
  });

  it('over the WebSocket: locks are taken and released by stateless messages and every connection is told at once; refusals go to the asker only', async () => {
    const { server } = suite;
    const name = 'acme/quote/q-socket';
    const alice = await open(server, name, 'alice');
    const bob = await open(server, name, 'bob');
    const vera = await open(server, name, 'vera', 'viewer');
    // Each connection is told the locks when it connects (none yet).
    for (const client of [alice, bob, vera]) await seesLocks(client, {});

    lockOver(alice, 'line:l1', 30);
    for (const client of [alice, bob, vera]) await seesLocks(client, { 'line:l1': 'alice' });
    expect(shownLocks(bob)![0]).toMatchObject({ name: 'ALICE' });

    lockOver(bob, 'line:l1');
    await waitFor('bob refused', () => refusals(bob).length === 1);
    expect(refusals(bob)[0]).toMatchObject({ code: 'locked', target: 'line:l1', holder: { userId: 'alice', name: 'ALICE' } });
    lockOver(vera, 'line:l2');
    unlockOver(bob, 'line:l1');
    lockOver(bob, 'row:9');
    await waitFor('three more refusals', () => refusals(vera).length === 1 && refusals(bob).length === 3);
    expect(refusals(vera)[0]!.code).toBe('not-allowed');
    expect(refusals(bob).slice(1).map((refusal) => refusal.code).sort()).toEqual(['bad-request', 'not-allowed']);
    expect(refusals(alice)).toEqual([]);

    // A late comer is told the locks as it connects.
    const carol = await open(server, name, 'carol');
    await seesLocks(carol, { 'line:l1': 'alice' });

    // A renewal moves `until`, and everyone is told.
    const before = shownLocks(bob)![0]!.until;
    lockOver(alice, 'line:l1', 300);
    await waitFor('renewal seen', () => shownLocks(bob)?.[0]?.until !== before);
    expect(Date.parse(shownLocks(bob)![0]!.until) - Date.parse(before)).toBeGreaterThan(200_000);

    unlockOver(alice, 'line:l1');
    for (const client of [alice, bob, vera, carol]) await seesLocks(client, {});
    // A message that is not a lock request is not answered; the connection carries on.
    alice.provider.sendStateless('not json');
    alice.provider.sendStateless(JSON.stringify({ type: 'concord:lock' }));
    await waitFor('malformed request refused', () => refusals(alice).length === 1);
    expect(refusals(alice)[0]!.code).toBe('bad-request');
    lockOver(alice, 'field:title');
    await seesLocks(bob, { 'field:title': 'alice' });
  });

  it('an expired lock disappears from every connection and the list without polling, and is free to take', async () => {
    const { server } = suite;
    const name = 'acme/quote/q-expiry';
    const path = '/api/documents/quote/q-expiry';
    const bob = await open(server, name, 'bob');
    const taken = await api(server.httpUrl, await as('alice'), 'POST', `${path}/locks`, { target: 'line:l1', ttlSeconds: 1 });
    expect(taken.status).toBe(201);
    await seesLocks(bob, { 'line:l1': 'alice' });
    const seenAt = Date.now();
    await seesLocks(bob, {});
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(taken.body.until));
    expect(Date.now() - seenAt).toBeLessThan(2_000);
    expect((await api(server.httpUrl, await as('bob'), 'GET', `${path}/locks`)).body.locks).toEqual([]);
    const retaken = await api(server.httpUrl, await as('bob'), 'POST', `${path}/locks`, { target: 'line:l1' });
    expect(retaken.status).toBe(201);
    // Taking an expired lock is a new acquisition.
    const log = await api(server.httpUrl, await as('ada', 'admin'), 'GET', `${path}/locks/log`);
    expect(log.body.entries.map((entry: any) => [entry.action, entry.holderId])).toEqual([
      ['acquired', 'bob'],
      ['acquired', 'alice'],
    ]);
  });

  it('a holder\'s locks are released when their last connection to the document closes, and an admin\'s break is seen live', async () => {
    const { server } = suite;
    const name = 'acme/quote/q-leave';
    const path = '/api/documents/quote/q-leave';
    const alice = await open(server, name, 'alice');
    const aliceAgain = await open(server, name, 'alice');
    const bob = await open(server, name, 'bob');
    lockOver(alice, 'line:l1');
    lockOver(alice, 'field:title');
    await seesLocks(bob, { 'line:l1': 'alice', 'field:title': 'alice' });

    // One of alice's two connections leaves: she is still there, her locks hold.
    alice.provider.destroy();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await api(server.httpUrl, await as('bob'), 'GET', `${path}/locks`)).body.locks).toHaveLength(2);
    aliceAgain.provider.destroy();
    await seesLocks(bob, {});
    expect((await api(server.httpUrl, await as('bob'), 'GET', `${path}/locks`)).body.locks).toEqual([]);

    lockOver(bob, 'line:l1');
    await seesLocks(bob, { 'line:l1': 'bob' });
    expect(await unlock(server, await as('ada', 'admin'), path, 'line:l1')).toBe(204);
    await seesLocks(bob, {});

    const log = await api(server.httpUrl, await as('ada', 'admin'), 'GET', `${path}/locks/log`);
    const rows: string[] = log.body.entries.map((entry: any) => [entry.action, entry.target, entry.holderId, entry.byId].join(' '));
    expect(rows.slice(0, 2)).toEqual(['broken line:l1 bob ada', 'acquired line:l1 bob bob']);
    // Alice's two locks were taken at once and released in one transaction: in either order.
    expect(rows.slice(2, 4).sort()).toEqual(['released field:title alice alice', 'released line:l1 alice alice']);
    expect(rows.slice(4).sort()).toEqual(['acquired field:title alice alice', 'acquired line:l1 alice alice']);
  });
});

// Instances share one database: the embedded PGlite is one process's, so this needs PostgreSQL.
describe.skipIf(!postgresUrl)(postgresTitle('locks across instances'), () => {
  const cluster = clusterFixture();

  it('a lock taken on one instance is seen live and held on the other; release and expiry reach it too', async () => {
    const { servers } = await cluster.start([{}, {}]);
    const [one, two] = servers as [ServerProcess, ServerProcess];
    const name = 'acme/quote/q-cluster';
    const path = '/api/documents/quote/q-cluster';
    const alice = await cluster.open(one, name, 'alice');
    const bob = await cluster.open(two, name, 'bob');
    await seesLocks(bob, {});

    lockOver(alice, 'line:l1');
    await seesLocks(bob, { 'line:l1': 'alice' });
    const refused = await api(two.httpUrl, await as('bob'), 'POST', `${path}/locks`, { target: 'line:l1' });
    expect(refused.status).toBe(409);
    expect(refused.body.error.holder).toEqual({ userId: 'alice', name: 'ALICE' });
    lockOver(bob, 'line:l1');
    await waitFor('bob refused', () => refusals(bob).length === 1);
    expect(refusals(bob)[0]).toMatchObject({ code: 'locked', holder: { userId: 'alice' } });

    // Bob's lock taken over HTTP on instance two reaches alice on instance one.
    expect((await api(two.httpUrl, await as('bob'), 'POST', `${path}/locks`, { target: 'field:title', ttlSeconds: 1 })).status).toBe(201);
    await seesLocks(alice, { 'line:l1': 'alice', 'field:title': 'bob' });
    // ... and expires there, without any message.
    await seesLocks(alice, { 'line:l1': 'alice' });

    unlockOver(alice, 'line:l1');
    await seesLocks(bob, {});

    // Alice leaving instance one releases her locks for instance two's clients too.
    lockOver(alice, 'field:notes');
    await seesLocks(bob, { 'field:notes': 'alice' });
    alice.provider.destroy();
    await seesLocks(bob, {});
  });
});

const settings = { LOCK_TTL_SECONDS: 60, LOCK_MAX_TTL_SECONDS: 600 };
const principal = (userId: string, role: Principal['role'] = 'editor'): Principal => ({ userId, tenant: 'acme', name: userId.toUpperCase(), role, expiresAt: Date.now() + 3_600_000 });

/** DocumentLocks in this process on a fresh database (and a Redis, when given), closed after the test. */
async function inProcess(count: number, redisUrl?: string): Promise<DocumentLocks[]> {
  const storage = await createStorage();
  const db = await openMigratedDatabase(storage);
  const redis = redisUrl ? new Redis(redisUrl) : null;
  const instances = Array.from({ length: count }, (_, index) => new DocumentLocks({ db, redis, instance: `in-process-${index}`, settings, log: createLogger('silent') }));
  cleanups.push(async () => {
    for (const locks of instances) await locks.close();
    redis?.disconnect();
    await db.close();
    await storage.drop();
  });
  return instances;
}

describe('what the rule check reads (DocumentLocks.held)', () => {
  it('a loaded document\'s unexpired locks, changed at once by this instance\'s own acquire and release; none for a document not loaded', async () => {
    const [locks] = (await inProcess(1)) as [DocumentLocks];
    const document = parseDocumentName('acme/quote/held');
    await locks.acquire(principal('alice'), document, 'line:before', 30);
    expect(locks.held(document.name)).toEqual([]);
    await locks.load(document.name, new Document(document.name));
    // Read from Postgres as the document loads.
    expect(locks.held(document.name).map((lock) => lock.target)).toEqual(['line:before']);

    await locks.acquire(principal('bob'), document, 'field:title', 1);
    expect(locks.held(document.name)).toEqual([
      { target: 'field:title', userId: 'bob', name: 'BOB', until: expect.any(String) },
      { target: 'line:before', userId: 'alice', name: 'ALICE', until: expect.any(String) },
    ]);
    await locks.release(principal('alice'), document, 'line:before');
    expect(locks.held(document.name).map((lock) => lock.target)).toEqual(['field:title']);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(locks.held(document.name)).toEqual([]);

    locks.forget(document.name);
    await locks.acquire(principal('alice'), document, 'line:after', 30);
    expect(locks.held(document.name)).toEqual([]);
  });
});

describe.skipIf(!postgresUrl)(postgresTitle('what the rule check reads, across instances'), () => {
  it('a lock taken or released by one instance is in the other\'s held() moments later (Redis)', async () => {
    const redisProcess = await new RedisProcess().start();
    cleanups.push(() => redisProcess.stop());
    const [one, two] = (await inProcess(2, redisProcess.url)) as [DocumentLocks, DocumentLocks];
    const document = parseDocumentName('acme/quote/held-across');
    await one.load(document.name, new Document(document.name));
    await two.load(document.name, new Document(document.name));
    await one.acquire(principal('alice'), document, 'line:l1');
    await waitFor('the lock on instance two', () => two.held(document.name).length === 1);
    expect(two.held(document.name)[0]).toMatchObject({ target: 'line:l1', userId: 'alice' });
    await expect(two.acquire(principal('bob'), document, 'line:l1')).rejects.toMatchObject({ code: 'locked', details: { holder: { userId: 'alice' } } });
    await one.release(principal('alice'), document, 'line:l1');
    await waitFor('the release on instance two', () => two.held(document.name).length === 0);
  });
});
