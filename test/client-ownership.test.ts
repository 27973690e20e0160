import * as decoding from 'lib0/decoding';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { structClients } from '../src/auth/client-owners.ts';
import type { Database } from '../src/db/database.ts';
import { replay } from '../src/persistence/replay.ts';
import { acknowledged, connect, goOffline, synced, waitFor, type Client } from './support/clients.ts';
import { clusterFixture } from './support/cluster.ts';
import { backends, createStorage, postgresUrl, postgresTitle } from './support/database.ts';
import { api } from './support/documents.ts';
import { authFrame, updateFrame } from './support/frames.ts';
import { fieldChanges, loggedUpdates, openTestDatabase, rowsOf } from './support/inspect.ts';
import { ServerProcess } from './support/server.ts';
import { TcpProxy } from './support/tcp-proxy.ts';
import { token } from './support/tokens.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A Hocuspocus client made of raw frames: it sends exactly the update it is given. */
interface RawClient {
  /** Answers to writes (SyncStatus): true for "applied". */
  syncStatuses: boolean[];
  /** `concord:refused` stateless messages. */
  refusals: Array<{ code: string; message: string }>;
  send(update: Uint8Array): void;
}

async function rawClient(url: string, name: string, userToken: string): Promise<RawClient> {
  const ws = new WebSocket(url);
  cleanups.push(() => ws.close());
  const client: RawClient = { syncStatuses: [], refusals: [], send: (update) => ws.send(updateFrame(name, update)) };
  let authenticated = false;
  ws.on('message', (data: Buffer) => {
    const decoder = decoding.createDecoder(new Uint8Array(data));
    decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    if (type === 2) authenticated ||= decoding.readVarUint(decoder) === 2;
    if (type === 5) {
      const message = JSON.parse(decoding.readVarString(decoder));
      if (message.type === 'concord:refused') client.refusals.push(message);
    }
    if (type === 8) client.syncStatuses.push(decoding.readVarUint(decoder) === 1);
  });
  await new Promise((resolve) => ws.once('open', resolve));
  ws.send(authFrame(name, userToken));
  await waitFor('raw client authenticated', () => authenticated);
  return client;
}

/** A synced provider for `sub` (an editor), on `doc` when given. */
async function openSynced(url: string, name: string, sub: string, doc?: Y.Doc): Promise<Client> {
  const client = connect(url, name, await token({ sub }), doc);
  cleanups.push(() => client.provider.destroy());
  await synced(client);
  return client;
}

/** What an editor who copied the server's state into a fresh Y.Doc with `clientID` would send after `edit`. */
function updateUnder(state: Y.Doc, clientID: number, edit: (doc: Y.Doc) => void): Uint8Array {
  const forged = new Y.Doc();
  Y.applyUpdate(forged, Y.encodeStateAsUpdate(state));
  // Set after loading: Yjs picks a new clientID when a loaded update holds content under its own.
  forged.clientID = clientID;
  const before = Y.encodeStateVector(forged);
  edit(forged);
  return Y.encodeStateAsUpdate(forged, before);
}

async function owners(db: Database, name: string): Promise<Array<{ client_id: string; user_id: string; origin: string }>> {
  return rowsOf(db, 'acme', 'SELECT client_id::text, user_id, origin FROM document_clients WHERE name = $1 ORDER BY claimed_at, client_id', [name]);
}

/** The document as its log rebuilds it. */
async function fromLog(db: Database, name: string): Promise<Y.Doc> {
  const doc = replay(null, await loggedUpdates(db, 'acme', name));
  cleanups.push(() => doc.destroy());
  return doc;
}

async function quoteRow(db: Database, id: string): Promise<Record<string, any> | undefined> {
  const [row] = await rowsOf<Record<string, any>>(db, 'acme', 'SELECT title, version::int AS version, updated_by FROM quotes WHERE id = $1', [id]);
  return row;
}

describe.each(backends)('a clientID belongs to the first user who writes under it, on $kind', ({ kind, reason }) => {
  async function serverAndDatabase(env: Record<string, string> = {}) {
    const storage = await createStorage(kind);
    cleanups.push(() => storage.drop());
    const server = await new ServerProcess({ ...storage.env, ...env }).start();
    cleanups.push(() => server.stop('SIGKILL'));
    // PGlite's folder belongs to one process: the test reads it once the server has stopped.
    const database = async () => {
      const db = await openTestDatabase(storage);
      cleanups.push(() => db.close());
      return db;
    };
    return { server, database };
  }

  it('an editor writing under alice\'s clientID is refused with foreign-client; alice\'s offline edit lands, everywhere, and ownership survives a restart', async ({ skip }) => {
    skip(!!reason, reason);
    const { server, database } = await serverAndDatabase();
    const name = 'acme/quote/stolen';
    const alice = await openSynced(server.wsUrl, name, 'alice');
    const carol = await openSynced(server.wsUrl, name, 'carol');
    alice.doc.getMap('quote').set('title', 'first');
    await acknowledged(alice);
    await goOffline(alice);
    alice.doc.getMap('quote').set('title', 'second');

    // Mallory, an editor, copies the server's state into a fresh doc under alice's clientID (seen in her awareness) and edits.
    const mallory = await rawClient(server.wsUrl, name, await token({ sub: 'mallory' }));
    await waitFor('carol has the first title', () => carol.doc.getMap('quote').get('title') === 'first');
    mallory.send(updateUnder(carol.doc, alice.doc.clientID, (doc) => doc.getMap('quote').set('title', 'stolen')));
    const refused = await waitFor('mallory refused', () => mallory.refusals[0]);
    expect(refused.code).toBe('foreign-client');
    expect(refused.message).toContain(String(alice.doc.clientID));
    await waitFor('mallory answered', () => mallory.syncStatuses.length > 0);
    expect(mallory.syncStatuses).toEqual([false]);

    alice.provider.connect();
    await acknowledged(alice);
    await waitFor('carol has alice\'s second title', () => carol.doc.getMap('quote').get('title') === 'second');
    const fresh = await openSynced(server.wsUrl, name, 'fay');
    expect(fresh.doc.getMap('quote').get('title')).toBe('second');
    // Alice's replica and the server agree, and keep agreeing.
    expect(Y.encodeStateVector(alice.doc)).toEqual(Y.encodeStateVector(fresh.doc));
    alice.doc.getMap('quote').set('status', 'sent');
    await acknowledged(alice);
    await waitFor('fay has the status', () => fresh.doc.getMap('quote').get('status') === 'sent');

    // Mallory tries again after a restart: ownership is durable.
    for (const client of [alice, carol, fresh]) client.provider.destroy();
    await server.stop();
    await server.start();
    const again = await rawClient(server.wsUrl, name, await token({ sub: 'mallory' }));
    const reloaded = await openSynced(server.wsUrl, name, 'carol');
    again.send(updateUnder(reloaded.doc, alice.doc.clientID, (doc) => doc.getMap('quote').set('title', 'stolen again')));
    expect((await waitFor('mallory refused after the restart', () => again.refusals[0])).code).toBe('foreign-client');
    // Alice's own provider, same clientID, still writes.
    const back = await openSynced(server.wsUrl, name, 'alice', alice.doc);
    back.doc.getMap('quote').set('title', 'third');
    await acknowledged(back);
    await waitFor('carol has the third title', () => reloaded.doc.getMap('quote').get('title') === 'third');
    expect(reloaded.doc.getMap('quote').get('title')).toBe('third');
    for (const client of [back, reloaded]) client.provider.destroy();
    await server.stop();

    const db = await database();
    const logged = await loggedUpdates(db, 'acme', name);
    expect(logged.map((row) => row.user_id)).toEqual(['alice', 'alice', 'alice', 'alice']);
    expect(logged.flatMap((row) => structClients(row.update))).toEqual(logged.map(() => alice.doc.clientID));
    expect((await fromLog(db, name)).getMap('quote').toJSON()).toEqual({ title: 'third', status: 'sent' });
    const titles = (await fieldChanges(db, 'acme', name)).filter((row) => row.field === 'title');
    expect(titles.map((row) => [row.new_value, row.user_id])).toEqual([['first', 'alice'], ['second', 'alice'], ['third', 'alice']]);
    expect(await quoteRow(db, 'stolen')).toMatchObject({ title: 'third', version: 4, updated_by: 'alice' });
    expect(await owners(db, name)).toEqual([{ client_id: String(alice.doc.clientID), user_id: 'alice', origin: 'client' }]);
    // The refused writes left no event: one covering event per logged update, all alice's.
    const events = await rowsOf<{ type: string; actor: string; seq_first: string }>(db, 'acme', 'SELECT type, actor, seq_first FROM change_events WHERE name = $1 ORDER BY position', [name]);
    expect(events.filter((event) => event.type.startsWith('document.')).map((event) => [Number(event.seq_first), event.actor])).toEqual(logged.map((row) => [row.seq, 'alice']));
    expect(new Set(events.map((event) => event.actor))).toEqual(new Set(['alice']));
    expect(server.logs).toMatch(/"code":"foreign-client"/);
  });

  it('PATCH writes under a clientID of its own, claimed for the caller, that no connection may write under', async ({ skip }) => {
    skip(!!reason, reason);
    const { server, database } = await serverAndDatabase();
    const name = 'acme/quote/patched';
    const alice = await openSynced(server.wsUrl, name, 'alice');
    alice.doc.getMap('quote').set('title', 'by alice');
    await acknowledged(alice);
    const bobToken = await token({ sub: 'bob' });
    expect((await api(server.httpUrl, bobToken, 'PATCH', '/api/documents/quote/patched', { quote: { status: 'sent' } })).status).toBe(200);
    await waitFor('alice has the patch', () => alice.doc.getMap('quote').get('status') === 'sent');
    const patchClients = [...alice.doc.store.clients.keys()].filter((client) => client !== alice.doc.clientID);
    expect(patchClients).toHaveLength(1);
    const [patchClient] = patchClients as [number];

    // Not even the caller's own provider may write under it (its next PATCH would collide).
    const bob = await rawClient(server.wsUrl, name, bobToken);
    bob.send(updateUnder(alice.doc, patchClient, (doc) => doc.getMap('quote').set('status', 'draft')));
    expect((await waitFor('bob refused', () => bob.refusals[0])).code).toBe('foreign-client');
    expect((await api(server.httpUrl, bobToken, 'PATCH', '/api/documents/quote/patched', { quote: { title: 'by the API' } })).status).toBe(200);
    await waitFor('alice has the second patch', () => alice.doc.getMap('quote').get('title') === 'by the API');
    alice.doc.getMap('quote').set('customerName', 'Acme');
    await acknowledged(alice);
    alice.provider.destroy();
    await server.stop();

    const db = await database();
    const logged = await loggedUpdates(db, 'acme', name);
    expect(logged.map((row) => [row.user_id, row.origin, structClients(row.update)])).toEqual([
      ['alice', 'client', [alice.doc.clientID]],
      ['bob', 'api', [patchClient]],
      ['bob', 'api', [patchClient]],
      ['alice', 'client', [alice.doc.clientID]],
    ]);
    expect(await owners(db, name)).toEqual([
      { client_id: String(alice.doc.clientID), user_id: 'alice', origin: 'client' },
      { client_id: String(patchClient), user_id: 'bob', origin: 'api' },
    ]);
    expect(await quoteRow(db, 'patched')).toMatchObject({ title: 'by the API', version: 4 });
  });

  it('an update may write under at most MAX_NEW_CLIENTS_PER_UPDATE clientIDs new to the document, and one more is refused whole', async ({ skip }) => {
    skip(!!reason, reason);
    const { server, database } = await serverAndDatabase({ MAX_NEW_CLIENTS_PER_UPDATE: '3' });
    const name = 'acme/quote/many-clients';
    const mallory = await rawClient(server.wsUrl, name, await token({ sub: 'mallory' }));
    /** One update with a title under each of `count` clientIDs from `first` on. */
    const underClients = (first: number, count: number) =>
      Y.mergeUpdates(
        Array.from({ length: count }, (_, index) => {
          const doc = new Y.Doc();
          doc.clientID = first + index;
          doc.getMap('quote').set('title', `by ${doc.clientID}`);
          return Y.encodeStateAsUpdate(doc);
        }),
      );
    mallory.send(underClients(1000, 3));
    await waitFor('the first update answered', () => mallory.syncStatuses.length === 1);
    mallory.send(underClients(2000, 4));
    const refused = await waitFor('mallory refused', () => mallory.refusals[0]);
    expect(refused.code).toBe('rate-limited');
    expect(refused.message).toContain('MAX_NEW_CLIENTS_PER_UPDATE');
    await waitFor('the second update answered', () => mallory.syncStatuses.length === 2);
    expect(mallory.syncStatuses).toEqual([true, false]);
    await server.stop();

    const db = await database();
    expect((await owners(db, name)).map((owner) => Number(owner.client_id)).sort()).toEqual([1000, 1001, 1002]);
    expect(structClients((await loggedUpdates(db, 'acme', name))[0]!.update).sort()).toEqual([1000, 1001, 1002]);
    expect(await loggedUpdates(db, 'acme', name)).toHaveLength(1);
  });

  it('ordinary flows: two tabs of one user, an offline merge of two users carrying each other\'s content, overwriting another\'s value', async ({ skip }) => {
    skip(!!reason, reason);
    const { server, database } = await serverAndDatabase();
    const name = 'acme/quote/ordinary';
    const tab1 = await openSynced(server.wsUrl, name, 'alice');
    const tab2 = await openSynced(server.wsUrl, name, 'alice');
    const bob = await openSynced(server.wsUrl, name, 'bob');
    tab1.doc.getMap('quote').set('title', 'tab 1');
    tab2.doc.getText('notes').insert(0, 'tab 2 ');
    await Promise.all([acknowledged(tab1), acknowledged(tab2)]);
    // Bob overwrites alice's title: the deletion names her clientID, and that is no write under it.
    await waitFor('bob has the title', () => bob.doc.getMap('quote').get('title') === 'tab 1');
    bob.doc.getMap('quote').set('title', 'bob\'s');
    await acknowledged(bob);

    // Both go offline and edit; bob's offline edit also reaches alice's replica (shared another way) before either reconnects.
    await Promise.all([goOffline(tab1), goOffline(bob)]);
    bob.doc.getMap('quote').set('customerName', 'Bob Corp');
    Y.applyUpdate(tab1.doc, Y.encodeStateAsUpdate(bob.doc, Y.encodeStateVector(tab1.doc)));
    tab1.doc.getText('notes').insert(0, 'offline ');
    bob.provider.connect();
    await acknowledged(bob);
    tab1.provider.connect();
    await acknowledged(tab1);
    await waitFor('tab 2 converged', () => tab2.doc.getText('notes').toString() === 'offline tab 2 ' && tab2.doc.getMap('quote').get('customerName') === 'Bob Corp');
    for (const client of [tab1, tab2, bob]) client.provider.destroy();
    await server.stop();

    const db = await database();
    const logged = await loggedUpdates(db, 'acme', name);
    const byClient = new Map<number, Set<string>>();
    for (const row of logged) for (const client of structClients(row.update)) byClient.set(client, (byClient.get(client) ?? new Set()).add(row.user_id));
    expect(byClient).toEqual(new Map([
      [tab1.doc.clientID, new Set(['alice'])],
      [tab2.doc.clientID, new Set(['alice'])],
      [bob.doc.clientID, new Set(['bob'])],
    ]));
    expect((await fromLog(db, name)).getMap('quote').toJSON()).toEqual({ title: 'bob\'s', customerName: 'Bob Corp' });
    expect((await owners(db, name)).map((row) => [Number(row.client_id), row.user_id]).sort()).toEqual(
      [[tab1.doc.clientID, 'alice'], [tab2.doc.clientID, 'alice'], [bob.doc.clientID, 'bob']].sort(),
    );
  });
});


describe.skipIf(!postgresUrl)(postgresTitle("a clientID's owner holds across instances"), () => {
  const { start, defer } = clusterFixture();

  async function twoInstances() {
    const { servers, storage } = await start([{}, {}]);
    const db = await openTestDatabase(storage);
    defer(() => db.close());
    return { one: servers[0]!, two: servers[1]!, db };
  }

  function openOn(server: ServerProcess, name: string, sub: string): Promise<Client> {
    return openSynced(server.wsUrl, name, sub);
  }

  it('a clientID claimed on one instance is refused to another user on the other, which had the document loaded before the claim', async () => {
    const { one, two, db } = await twoInstances();
    const name = 'acme/quote/across';
    const carol = await openOn(two, name, 'carol');
    const alice = await openOn(one, name, 'alice');
    alice.doc.getMap('quote').set('title', 'alice\'s');
    await acknowledged(alice);
    await waitFor('carol has alice\'s title', () => carol.doc.getMap('quote').get('title') === 'alice\'s');

    const mallory = await rawClient(two.wsUrl, name, await token({ sub: 'mallory' }));
    mallory.send(updateUnder(carol.doc, alice.doc.clientID, (doc) => doc.getMap('quote').set('title', 'stolen')));
    expect((await waitFor('mallory refused', () => mallory.refusals[0])).code).toBe('foreign-client');
    alice.doc.getMap('quote').set('title', 'still alice\'s');
    await acknowledged(alice);
    await waitFor('carol has it', () => carol.doc.getMap('quote').get('title') === 'still alice\'s');
    const logged = await loggedUpdates(db, 'acme', name);
    expect(logged.map((row) => row.user_id)).toEqual(['alice', 'alice']);
    expect((await fromLog(db, name)).getMap('quote').get('title')).toBe('still alice\'s');
  });

  it('two users claiming one fresh clientID on two instances at once: Postgres picks one owner, and only the owner\'s content is logged', async () => {
    const { one, two, db } = await twoInstances();
    const name = 'acme/quote/race';
    const watchers = await Promise.all([openOn(one, name, 'w1'), openOn(two, name, 'w2')]);
    const rivals = await Promise.all([rawClient(one.wsUrl, name, await token({ sub: 'u1' })), rawClient(two.wsUrl, name, await token({ sub: 'u2' }))]);
    const shared = 424_242;
    const empty = new Y.Doc();
    rivals.forEach((rival, index) => rival.send(updateUnder(empty, shared, (doc) => doc.getMap('quote').set('title', `u${index + 1}`))));
    await waitFor('both rivals answered', () => rivals.every((rival) => rival.syncStatuses.length > 0 || rival.refusals.length > 0), 30_000);

    const claimed = await owners(db, name);
    expect(claimed).toHaveLength(1);
    expect(claimed[0]).toMatchObject({ client_id: String(shared), origin: 'client' });
    const winner = claimed[0]!.user_id;
    const loser = rivals[winner === 'u1' ? 1 : 0]!;
    await waitFor('both instances show the winner\'s title', () => watchers.every((watcher) => watcher.doc.getMap('quote').get('title') === winner));
    // The loser is refused, or (its rival's content was relayed to its instance first) its write changed nothing.
    if (loser.refusals.length) expect(loser.refusals.map((refusal) => refusal.code)).toEqual(['foreign-client']);
    const logged = await loggedUpdates(db, 'acme', name);
    expect(logged.map((row) => row.user_id)).toEqual([winner]);
    expect((await fromLog(db, name)).getMap('quote').get('title')).toBe(winner);
    expect((await fieldChanges(db, 'acme', name)).map((row) => [row.field, row.new_value, row.user_id])).toEqual([['title', winner, winner]]);
  });

  /** An instance that reaches PostgreSQL through a proxy the test cuts, beside instance-1 (direct), sharing Redis. */
  async function besideOneBehindProxy() {
    const { servers, storage, redis } = await start([{}]);
    const db = await openTestDatabase(storage);
    defer(() => db.close());
    const database = new URL(storage.databaseUrl!);
    const postgres = await new TcpProxy({ host: database.hostname, port: Number(database.port || 5432) }).listen();
    defer(() => postgres.close());
    database.port = String(postgres.port);
    const cut = await new ServerProcess({ ...storage.env, DATABASE_URL: database.toString(), REDIS_URL: redis.url, INSTANCE_ID: 'cut-off' }).start();
    defer(() => cut.stop('SIGKILL'));
    return { direct: servers[0]!, cut, postgres, db };
  }

  it('while Postgres is away a new clientID is claimed on the instance (others are refused it) and its update\'s commit writes the claim', async () => {
    const { cut, postgres, db } = await besideOneBehindProxy();
    const name = 'acme/quote/claimed-in-outage';
    const alice = await openOn(cut, name, 'alice');
    postgres.cut();
    alice.doc.getMap('quote').set('title', 'while Postgres was away');
    const mallory = await rawClient(cut.wsUrl, name, await token({ sub: 'mallory' }));
    await waitFor('the instance applied alice\'s title', async () => (await cut.metrics()).get('concord_updates_received_total')! >= 1);
    mallory.send(updateUnder(alice.doc, alice.doc.clientID, (doc) => doc.getMap('quote').set('title', 'stolen')));
    expect((await waitFor('mallory refused', () => mallory.refusals[0])).code).toBe('foreign-client');
    postgres.restore();
    await acknowledged(alice, 30_000);
    expect(await owners(db, name)).toEqual([{ client_id: String(alice.doc.clientID), user_id: 'alice', origin: 'client' }]);
    expect((await loggedUpdates(db, 'acme', name)).map((row) => row.user_id)).toEqual(['alice']);
  });

  it('a claim made while Postgres was away that another instance made first meanwhile: the update is logged, never acknowledged', async () => {
    const { direct, cut, postgres, db } = await besideOneBehindProxy();
    const name = 'acme/quote/late-claim';
    const watchers = await Promise.all([openOn(cut, name, 'w1'), openOn(direct, name, 'w2')]);
    const u1 = await rawClient(cut.wsUrl, name, await token({ sub: 'u1' }));
    const u2 = await rawClient(direct.wsUrl, name, await token({ sub: 'u2' }));
    const shared = 515_151;
    postgres.cut();
    const first = updateUnder(new Y.Doc(), shared, (doc) => doc.getMap('quote').set('title', 'u1'));
    u1.send(first);
    await waitFor('u1\'s title on the direct instance', () => watchers[1].doc.getMap('quote').get('title') === 'u1', 30_000);
    // u2 writes next under the same clientID on the instance that reaches Postgres: the claim is u2's there.
    const afterFirst = new Y.Doc();
    Y.applyUpdate(afterFirst, first);
    u2.send(updateUnder(afterFirst, shared, (doc) => doc.getMap('quote').set('customerName', 'u2')));
    await waitFor('u2\'s claim', async () => (await owners(db, name)).length === 1, 30_000);
    expect(await owners(db, name)).toEqual([{ client_id: String(shared), user_id: 'u2', origin: 'client' }]);
    postgres.restore();
    await waitFor('u1\'s update logged', async () => (await loggedUpdates(db, 'acme', name)).some((row) => row.user_id === 'u1'), 30_000);
    await waitFor('u2 acknowledged', () => u2.syncStatuses.includes(true), 30_000);
    await waitFor('the refusal logged by the cut-off instance', () => /"code":"foreign-client"/.test(cut.logs), 30_000);
    expect(u1.syncStatuses).not.toContain(true);
    expect((await loggedUpdates(db, 'acme', name)).map((row) => row.user_id).sort()).toEqual(['u1', 'u2']);
  });
});
