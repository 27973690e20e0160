import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { Database } from '../src/db/database.ts';
import { renderDocument } from '../src/documents/service.ts';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { replay } from '../src/persistence/replay.ts';
import { acknowledged, waitFor, type Client } from './support/clients.ts';
import { clusterFixture, presence, stateOf } from './support/cluster.ts';
import { postgresTitle, postgresUrl } from './support/database.ts';
import { addLine, api, lineById } from './support/documents.ts';
import { fieldChanges, loggedUpdates, openTestDatabase, rowsOf } from './support/inspect.ts';
import { ServerProcess } from './support/server.ts';
import { TcpProxy } from './support/tcp-proxy.ts';
import { token } from './support/tokens.ts';

const { start, open, defer } = clusterFixture();

/** `count` instances on one fresh PostgreSQL database and one Redis of the test's own, and that database opened here. */
async function cluster(count: number, env: Record<string, string> = {}) {
  const started = await start(Array.from({ length: count }, () => env));
  const db = await openTestDatabase(started.storage);
  defer(() => db.close());
  return { ...started, db };
}

function sameContent(a: Client, b: Client, name: string): boolean {
  return isDeepStrictEqual(rendered(a, name), rendered(b, name));
}

/** The document as its log rebuilds it, in its JSON form. */
async function fromLog(db: Database, name: string) {
  const rows = await loggedUpdates(db, 'acme', name);
  const doc = replay(null, rows);
  try {
    return renderDocument(parseDocumentName(name), doc);
  } finally {
    doc.destroy();
  }
}

function rendered(client: Client, name: string) {
  return renderDocument(parseDocumentName(name), client.doc);
}

// Instances share one database: the embedded PGlite is one process's, so this needs PostgreSQL.
describe.skipIf(!postgresUrl)(postgresTitle('several instances through Redis'), () => {
  it('edits and cursors cross both ways; presence on either instance lists both users; each instance has its own identity', async () => {
    const { servers, storage, redis } = await cluster(2);
    const [one, two] = servers as [ServerProcess, ServerProcess];
    const identities = await Promise.all(servers.map(async (server) => (await (await server.get('/healthz')).json()).instance));
    expect(identities).toEqual(['instance-1', 'instance-2']);
    // Two instances with one identity would not hear each other: the second refuses to start.
    const twin = new ServerProcess({ ...storage.env, REDIS_URL: redis.url, INSTANCE_ID: 'instance-1' });
    await expect(twin.start()).rejects.toThrow(/another running instance has the identity "instance-1"/);

    const name = 'acme/quote/shared';
    const alice = await open(one, name, 'alice');
    const bob = await open(two, name, 'bob');
    alice.doc.getMap('quote').set('title', 'From instance 1');
    await waitFor('alice\'s edit on instance 2', () => bob.doc.getMap('quote').get('title') === 'From instance 1');
    addLine(bob.doc, { id: 'l1', sku: 'B-1', quantity: 2, unitPrice: 5 });
    await waitFor('bob\'s line on instance 1', () => lineById(alice.doc, 'l1')?.get('sku') === 'B-1');

    alice.provider.setAwarenessField('cursor', { anchor: 3, head: 5 });
    alice.provider.setAwarenessField('focus', { field: 'title' });
    alice.provider.setAwarenessField('status', 'editing');
    bob.provider.setAwarenessField('focus', { lineId: 'l1', field: 'quantity' });
    // Her three fields go out as three awareness updates: wait for the last, as presence is read below.
    await waitFor('alice\'s cursor and status on instance 2', () => stateOf(bob, alice)?.cursor?.head === 5 && stateOf(bob, alice)?.status === 'editing');
    await waitFor('bob\'s focus on instance 1', () => stateOf(alice, bob)?.focus?.lineId === 'l1');
    expect(stateOf(bob, alice)!.user).toMatchObject({ id: 'alice', name: 'ALICE' });
    expect(stateOf(alice, bob)!.user).toMatchObject({ id: 'bob', name: 'BOB' });

    for (const server of servers) {
      const listed = await waitFor(`both users in presence on ${server.port}`, async () => {
        const { users, complete } = await presence(server, name);
        const focused = users.filter((user) => user.focus !== null);
        return complete && users.length === 2 && focused.length === 2 && users;
      });
      const byUser = Object.fromEntries(listed.map((user) => [user.userId, user]));
      expect(byUser.alice).toMatchObject({ name: 'ALICE', instance: 'instance-1', status: 'editing', focus: { field: 'title' } });
      expect(byUser.bob).toMatchObject({ name: 'BOB', instance: 'instance-2', status: 'viewing', focus: { lineId: 'l1', field: 'quantity' } });
      expect(Date.parse(byUser.alice!.since)).toBeLessThanOrEqual(Date.now());
    }
  });

  it('a client whose awareness claims another user is shown with its own identity, here and on the other instance', async () => {
    const { servers } = await cluster(2);
    const [one, two] = servers as [ServerProcess, ServerProcess];
    const name = 'acme/quote/spoof';
    const mallory = await open(one, name, 'mallory');
    const bob = await open(two, name, 'bob');
    const carol = await open(one, name, 'carol');
    // Garbage first: a state that is no object is dropped, and the connection carries on.
    mallory.provider.awareness!.setLocalState(42 as never);
    mallory.provider.awareness!.setLocalState({});
    mallory.provider.setAwarenessField('user', { id: 'alice', name: 'Alice', color: '#f00' });
    mallory.provider.setAwarenessField('status', 'editing');

    for (const observer of [bob, carol]) {
      const state = await waitFor('mallory\'s state', () => stateOf(observer, mallory)?.status === 'editing' && stateOf(observer, mallory));
      expect(state.user).toEqual({ id: 'mallory', name: 'MALLORY', color: '#f00' });
    }
    const { users } = await waitFor('presence of all three, mallory editing', async () => {
      const listed = await presence(two, name);
      return listed.users.length === 3 && listed.users.some((user) => user.status === 'editing') && listed;
    });
    expect(users.map((user) => user.userId).sort()).toEqual(['bob', 'carol', 'mallory']);
    expect(users.find((user) => user.userId === 'mallory')).toMatchObject({ name: 'MALLORY', status: 'editing' });
    mallory.doc.getMap('quote').set('title', 'still connected');
    await waitFor('mallory\'s edit on instance 2', () => bob.doc.getMap('quote').get('title') === 'still connected');
  });

  it('a user who sends nothing for PRESENCE_IDLE_MS shows as idle on every instance, and active again after an edit', async () => {
    const { servers } = await cluster(2, { PRESENCE_IDLE_MS: '1500' });
    const [one, two] = servers as [ServerProcess, ServerProcess];
    const name = 'acme/quote/idle';
    const alice = await open(one, name, 'alice');
    alice.provider.setAwarenessField('status', 'editing');
    const statusOn = async (server: ServerProcess) => (await presence(server, name)).users.find((user) => user.userId === 'alice')?.status;
    await waitFor('alice editing on instance 2', async () => (await statusOn(two)) === 'editing');
    await waitFor('alice idle on instance 1', async () => (await statusOn(one)) === 'idle');
    await waitFor('alice idle on instance 2', async () => (await statusOn(two)) === 'idle', 15_000);
    // The provider renews its unchanged state every 15 s: that is not activity.
    alice.provider.awareness!.setLocalState({ ...alice.provider.awareness!.getLocalState() });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await statusOn(one)).toBe('idle');
    alice.doc.getMap('quote').set('title', 'back');
    await waitFor('alice editing again on instance 2', async () => (await statusOn(two)) === 'editing');
  });

  it('concurrent writers on two instances: seq gap-free, each edit logged and audited once, tables match the merged quote', async () => {
    const { servers, db } = await cluster(2, { AUDIT_TEXT_BURST_MS: '60000' });
    const [one, two] = servers as [ServerProcess, ServerProcess];
    const name = 'acme/quote/concurrent';
    const alice = await open(one, name, 'alice');
    alice.doc.transact(() => {
      alice.doc.getMap('quote').set('taxPct', 10);
      addLine(alice.doc, { id: 'la', sku: 'A', quantity: 1, unitPrice: 3.5 });
      addLine(alice.doc, { id: 'lb', sku: 'B', quantity: 1, unitPrice: 1.25 });
    });
    await acknowledged(alice);
    const bob = await open(two, name, 'bob');
    await waitFor('bob has the lines', () => lineById(bob.doc, 'lb'));

    const edits = 150;
    const localUpdates = (client: Client) => {
      const counter = { count: 0 };
      client.doc.on('update', (_update: Uint8Array, origin: unknown) => origin !== client.provider && (counter.count += 1));
      return counter;
    };
    const aliceUpdates = localUpdates(alice);
    const bobUpdates = localUpdates(bob);
    for (let i = 1; i <= edits; i++) {
      lineById(alice.doc, 'la')!.set('quantity', i + 1);
      lineById(bob.doc, 'lb')!.set('quantity', i * 2);
      // Both write the header too: one of each pair of concurrent writes wins.
      alice.doc.getMap('quote').set('discountPct', i % 7);
      bob.doc.getMap('quote').set('discountPct', i % 5);
      if (i % 25 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await Promise.all([acknowledged(alice, 30_000), acknowledged(bob, 30_000)]);
    await waitFor('convergence', () => sameContent(alice, bob, name), 30_000);

    const logged = await loggedUpdates(db, 'acme', name);
    expect(logged.map((row) => row.seq)).toEqual(logged.map((_, index) => index + 1));
    expect(logged).toHaveLength(1 + aliceUpdates.count + bobUpdates.count);
    expect(logged.filter((row) => row.user_id === 'alice')).toHaveLength(1 + aliceUpdates.count);
    expect(logged.filter((row) => row.user_id === 'bob')).toHaveLength(bobUpdates.count);
    const metrics = await Promise.all(servers.map((server) => server.metrics()));
    for (const series of metrics) expect(series.get('concord_orphans_recovered_total')).toBe(0);
    // Alice's first commit, made before Bob's instance loaded the document, went in one round trip on the seq her
    // instance predicted. From then on both predict, and miss whenever the other logged the document in between:
    // the log, audit rows and tables below are exact either way.
    expect(metrics[0]!.get('concord_commit_seq_predictions_total{outcome="held"}')).toBeGreaterThan(0);
    const contents = logged.map((row) => Buffer.from(row.update).toString('hex'));
    expect(new Set(contents).size).toBe(contents.length);
    expect(await fromLog(db, name)).toEqual(rendered(alice, name));

    const changes = await fieldChanges(db, 'acme', name);
    const quantityRows = (id: string) => changes.filter((row) => row.entity === 'quote_line' && row.entity_id === id && row.field === 'quantity');
    expect(quantityRows('la').map((row) => row.new_value)).toEqual(Array.from({ length: edits }, (_, index) => index + 2));
    expect(quantityRows('la').every((row) => row.user_id === 'alice')).toBe(true);
    expect(quantityRows('lb').map((row) => row.new_value)).toEqual(Array.from({ length: edits }, (_, index) => (index + 1) * 2));
    expect(quantityRows('lb').every((row) => row.user_id === 'bob')).toBe(true);
    const audited = new Set(changes.map((row) => `${row.seq}/${row.entity}/${row.entity_id}/${row.field}`));
    expect(audited.size).toBe(changes.length);

    const content = rendered(alice, name) as any;
    const version = logged.length;
    await waitFor('tables show the merged quote', async () => {
      const [quote] = await rowsOf<Record<string, any>>(db, 'acme', 'SELECT * FROM quotes WHERE id = $1', [parseDocumentName(name).id]);
      return quote && Number(quote.discount_pct) === content.quote.discountPct && Number(quote.version) === version && Number(quote.total) === content.totals.total;
    }, 30_000);
    const lines = await rowsOf<Record<string, any>>(db, 'acme', 'SELECT id, quantity, line_total, updated_by FROM quote_lines WHERE quote_id = $1 ORDER BY position', ['concurrent']);
    expect(lines.map((line) => [line.id, Number(line.quantity), line.updated_by])).toEqual([
      ['la', edits + 1, 'alice'],
      ['lb', edits * 2, 'bob'],
    ]);
    expect(content.totals.total).toBeGreaterThan(0);
  });

  it('SIGKILL one instance: its clients reconnect to another through the balancer and lose nothing acknowledged; its users leave presence', async () => {
    const { servers, db } = await cluster(2);
    const [one, two] = servers as [ServerProcess, ServerProcess];
    const balancer = await new TcpProxy({ host: '127.0.0.1', port: one.port }).listen();
    defer(() => balancer.close());
    const name = 'acme/quote/failover';
    const alice = await open(`ws://127.0.0.1:${balancer.port}`, name, 'alice');
    const dave = await open(one, name, 'dave'); // connected to instance 1 directly: gone with it
    const carol = await open(two, name, 'carol');
    await waitFor('dave in presence on instance 2', async () => (await presence(two, name)).users.some((user) => user.userId === 'dave'));

    const notes = alice.doc.getText('notes');
    for (let i = 0; i < 40; i++) notes.insert(notes.length, `a${i} `);
    await acknowledged(alice);
    const acknowledgedText = notes.toString();
    // More edits in flight while the instance dies: unacknowledged, they are sent again after the reconnect.
    for (let i = 0; i < 40; i++) notes.insert(notes.length, `b${i} `);
    balancer.retarget({ host: '127.0.0.1', port: two.port });
    await one.stop('SIGKILL');
    const killedAt = Date.now();

    await waitFor('alice back, on instance 2', () => alice.provider.isSynced && alice.provider.unsyncedChanges === 0, 30_000);
    notes.insert(notes.length, 'after ');
    await acknowledged(alice);
    await waitFor('carol has everything alice has', () => sameContent(alice, carol, name));
    // What the log holds equals what the clients hold, including updates instance 1 relayed but never logged.
    await waitFor('the log holds alice\'s document', async () => isDeepStrictEqual(await fromLog(db, name), rendered(alice, name)), 30_000);
    const { body } = await api(two.httpUrl, await token({ sub: 'observer', role: 'viewer' }), 'GET', '/api/documents/quote/failover');
    expect(body.content.notes).toBe(notes.toString());
    expect(body.content.notes.startsWith(acknowledgedText)).toBe(true);

    const listed = await waitFor('instance 1\'s users gone from presence', async () => {
      const { users } = await presence(two, name);
      return users.every((user) => user.instance !== 'instance-1') && users;
    }, 30_000);
    expect(Date.now() - killedAt).toBeLessThan(30_000);
    expect(listed.map((user) => `${user.userId}@${user.instance}`).sort()).toEqual(['alice@instance-2', 'carol@instance-2']);
    dave.provider.destroy();
  });

  /** Instance "doomed" reaches PostgreSQL through a proxy the test cuts: it relays edits but cannot log them. */
  async function doomedBeside(survivorEnv: Record<string, string> = {}) {
    const { servers, db, storage, redis } = await cluster(1, survivorEnv);
    const database = new URL(storage.databaseUrl!);
    const postgres = await new TcpProxy({ host: database.hostname, port: Number(database.port || 5432) }).listen();
    defer(() => postgres.close());
    database.port = String(postgres.port);
    const doomed = await new ServerProcess({ ...storage.env, DATABASE_URL: database.toString(), REDIS_URL: redis.url, INSTANCE_ID: 'doomed' }).start();
    defer(() => doomed.stop('SIGKILL'));
    const name = 'acme/quote/relayed';
    const alice = await open(doomed, name, 'alice');
    const carol = await open(servers[0]!, name, 'carol');
    alice.doc.getMap('quote').set('title', 'Logged by the doomed instance');
    await acknowledged(alice);
    postgres.cut();
    alice.doc.getMap('quote').set('title', 'Only relayed');
    await waitFor('carol has the unlogged title', () => carol.doc.getMap('quote').get('title') === 'Only relayed');
    expect(alice.provider.unsyncedChanges).toBeGreaterThan(0);
    return { survivor: servers[0]!, doomed, postgres, db, name, alice, carol };
  }

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('a write building on a relayed update is acknowledged only once that update is logged; if its instance dies, the survivor logs it once, for the owner of its clientID', async () => {
    const { survivor, doomed, db, name, carol } = await doomedBeside();
    carol.doc.getMap('quote').set('customerName', 'Carol Corp');
    await sleep(1_500);
    expect(carol.provider.unsyncedChanges).toBeGreaterThan(0);
    await doomed.stop('SIGKILL');

    await acknowledged(carol, 30_000);
    // Acknowledged means logged, including the relayed title it was written on.
    expect(await fromLog(db, name)).toEqual(rendered(carol, name));
    const logged = await rowsOf<{ user_id: string; origin: string; attribution: string }>(db, 'acme', 'SELECT user_id, origin, attribution FROM document_updates WHERE name = $1 ORDER BY seq', [name]);
    // Alice's clientID was hers since her first (logged) write: the recovered title is hers.
    expect(logged.map((row) => `${row.user_id}/${row.origin}/${row.attribution}`).sort()).toEqual(['alice/client/client-owner', 'alice/client/sender', 'carol/client/sender']);
    expect((await survivor.metrics()).get('concord_orphans_recovered_total')).toBe(1);
    const titles = (await fieldChanges(db, 'acme', name)).filter((row) => row.field === 'title');
    expect(titles.map((row) => [row.new_value, row.user_id])).toEqual([['Logged by the doomed instance', 'alice'], ['Only relayed', 'alice']]);
  });

  it('recovered content has its audit rows and table rows: a create row per line, by the owner of its clientID, or flagged unknown', async () => {
    const { survivor, doomed, db, name, alice, carol } = await doomedBeside();
    // Dave's first write reaches the doomed instance while it cannot reach Postgres: his clientID is claimed nowhere durable.
    const dave = await open(doomed, name, 'dave');
    const lineIds = { alice: ['a1', 'a2', 'a3', 'a4'], dave: ['d1', 'd2', 'd3'] };
    for (const id of lineIds.alice) addLine(alice.doc, { id, sku: id, quantity: 1, unitPrice: 2 });
    await waitFor('carol has alice\'s lines', () => lineById(carol.doc, 'a4'));
    for (const id of lineIds.dave) addLine(dave.doc, { id, sku: id, quantity: 2, unitPrice: 3 });
    await waitFor('carol has dave\'s lines', () => lineById(carol.doc, 'd3'));
    await doomed.stop('SIGKILL');

    const allLines = [...lineIds.alice, ...lineIds.dave];
    await waitFor('the log holds every line', async () => ((await fromLog(db, name)) as any).lines.length === allLines.length, 30_000);
    expect(await fromLog(db, name)).toEqual(rendered(carol, name));
    const creates = await rowsOf<{ entity_id: string; user_id: string; attribution: string }>(
      db,
      'acme',
      `SELECT entity_id, user_id, attribution FROM field_changes WHERE name = $1 AND entity = 'quote_line' AND action = 'create' ORDER BY entity_id`,
      [name],
    );
    expect(creates).toEqual([
      ...lineIds.alice.map((id) => ({ entity_id: id, user_id: 'alice', attribution: 'client-owner' })),
      ...lineIds.dave.map((id) => ({ entity_id: id, user_id: '', attribution: 'unknown' })),
    ]);
    // The history API says how each author is known.
    const { body } = await api(survivor.httpUrl, await token({ sub: 'ada', role: 'admin' }), 'GET', '/api/documents/quote/relayed/changes?entity=quote_line');
    const created = body.changes.filter((change: any) => change.action === 'create');
    expect(created.map((change: any) => [change.entityId, change.userId, change.attribution]).sort()).toEqual(creates.map((row) => [row.entity_id, row.user_id, row.attribution]));
    const recovered = await rowsOf<{ user_id: string; attribution: string }>(db, 'acme', `SELECT DISTINCT user_id, attribution FROM document_updates WHERE name = $1 AND attribution <> 'sender' ORDER BY user_id`, [name]);
    expect(recovered).toEqual([{ user_id: '', attribution: 'unknown' }, { user_id: 'alice', attribution: 'client-owner' }]);
    const rows = await rowsOf<{ id: string }>(db, 'acme', 'SELECT id FROM quote_lines WHERE quote_id = $1 ORDER BY position', ['relayed']);
    expect(rows.map((row) => row.id)).toEqual(allLines);
    expect((await survivor.metrics()).get('concord_orphans_recovered_total')).toBeGreaterThanOrEqual(1);
  });

  it('a relayed update whose instance is alive but slow to log is waited for, never logged twice', async () => {
    const { survivor, postgres, db, name, alice, carol } = await doomedBeside();
    carol.doc.getMap('quote').set('customerName', 'Carol Corp');
    await sleep(6_000); // twice as long as the survivor waits before recovering what nobody logs
    expect(carol.provider.unsyncedChanges).toBeGreaterThan(0);
    postgres.restore();
    await Promise.all([acknowledged(alice, 30_000), acknowledged(carol, 30_000)]);
    const logged = await loggedUpdates(db, 'acme', name);
    expect(logged.map((row) => row.user_id).sort()).toEqual(['alice', 'alice', 'carol']);
    expect(await fromLog(db, name)).toEqual(rendered(carol, name));
    expect((await survivor.metrics()).get('concord_orphans_recovered_total')).toBe(0);
  });

  it('a document holding an unlogged relayed update stays loaded until it is logged, even when everyone leaves', async () => {
    const { survivor, doomed, db, name, alice, carol } = await doomedBeside();
    await doomed.stop('SIGKILL');
    alice.provider.destroy();
    carol.provider.destroy();
    await waitFor('the log holds the relayed title', async () => ((await fromLog(db, name)) as any).quote.title === 'Only relayed', 30_000);
    expect((await survivor.metrics()).get('concord_orphans_recovered_total')).toBe(1);
  });

  it('Redis stopped mid-session and started again: both instances keep logging and acknowledging, /readyz names Redis, then they converge', async () => {
    const { servers, db, redis } = await cluster(2);
    const [one, two] = servers as [ServerProcess, ServerProcess];
    const balancer = await new TcpProxy({ host: '127.0.0.1', port: one.port }).listen();
    defer(() => balancer.close());
    const name = 'acme/quote/outage';
    const alice = await open(`ws://127.0.0.1:${balancer.port}`, name, 'alice');
    const bob = await open(two, name, 'bob');
    addLine(alice.doc, { id: 'l1', sku: 'A', quantity: 1, unitPrice: 2 });
    await waitFor('bob has the line', () => lineById(bob.doc, 'l1'));

    await redis.stop();
    await waitFor('instance 1 not ready', async () => (await one.get('/readyz')).status === 503);
    const readiness = await (await one.get('/readyz')).json();
    expect(readiness).toMatchObject({ error: { code: 'not-ready' }, checks: { postgres: 'up', redis: 'down' } });
    expect(readiness.error.message).toContain('redis');

    alice.doc.getMap('quote').set('title', 'Written during the outage');
    lineById(alice.doc, 'l1')!.set('quantity', 7);
    addLine(bob.doc, { id: 'l2', sku: 'B', quantity: 3, unitPrice: 1 });
    bob.doc.getText('notes').insert(0, 'bob was here');
    await Promise.all([acknowledged(alice), acknowledged(bob)]);
    // Alice moves to instance 2 while Redis is away: what instance 1 logged for her is not logged again.
    const rowsBeforeMove = (await loggedUpdates(db, 'acme', name)).length;
    balancer.retarget({ host: '127.0.0.1', port: two.port });
    balancer.cut();
    balancer.restore();
    await waitFor('alice on instance 2 has bob\'s line', () => lineById(alice.doc, 'l2'), 30_000);
    await acknowledged(alice);
    expect(await loggedUpdates(db, 'acme', name)).toHaveLength(rowsBeforeMove);
    // A document opened while Redis is away still loads.
    const erin = await open(two, 'acme/quote/opened-in-outage', 'erin');
    erin.doc.getMap('quote').set('title', 'still works');
    await acknowledged(erin);

    await redis.start();
    await waitFor('both ready again', async () => (await Promise.all(servers.map((server) => server.get('/readyz')))).every((response) => response.status === 200), 30_000);
    await waitFor('the instances converge', () => sameContent(alice, bob, name), 30_000);
    expect(lineById(alice.doc, 'l2')?.get('sku')).toBe('B');
    expect(bob.doc.getMap('quote').get('title')).toBe('Written during the outage');

    const logged = await loggedUpdates(db, 'acme', name);
    expect(logged.map((row) => row.seq)).toEqual(logged.map((_, index) => index + 1));
    expect(logged).toHaveLength(rowsBeforeMove);
    expect(await fromLog(db, name)).toEqual(rendered(alice, name));
    // Editing goes on across instances after the outage.
    alice.doc.getMap('quote').set('title', 'After the outage');
    await waitFor('the new title on instance 2', () => bob.doc.getMap('quote').get('title') === 'After the outage');
  });
});
