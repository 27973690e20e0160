import { Redis } from 'ioredis';
import * as encoding from 'lib0/encoding';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { applyAwarenessUpdate } from 'y-protocols/awareness';
import { goOffline, synced, waitFor, type Client } from './support/clients.ts';
import { clusterFixture, presence, stateOf } from './support/cluster.ts';
import { postgresTitle, postgresUrl } from './support/database.ts';
import type { ServerProcess } from './support/server.ts';
import { TcpProxy } from './support/tcp-proxy.ts';
import { token } from './support/tokens.ts';

const { start, single, open, connect, defer } = clusterFixture();

// The board's TTL (src/presence/redis-board.ts): a killed instance's users drop off within it.
const BOARD_TTL_MS = 15_000;

/** Runs a server process with its clock `skewMs` off. */
function skewedClock(skewMs: number): Record<string, string> {
  return { NODE_OPTIONS: `--import=${new URL('./support/skewed-clock.ts', import.meta.url).href}`, CLOCK_SKEW_MS: String(skewMs) };
}

/** Every distinct `user` that `observer` was shown in the awareness state of `of`'s client id. */
function usersShown(observer: Client, of: Client): Set<string> {
  const shown = new Set<string>();
  observer.provider.awareness!.on('change', () => {
    const user = stateOf(observer, of)?.user;
    if (user !== undefined) shown.add(JSON.stringify(user));
  });
  return shown;
}

/** Makes `client`'s provider send `state` as the awareness state of `clientId`, with a newer clock than it knows. */
function writeStateOf(client: Client, clientId: number, state: Record<string, unknown>): void {
  const awareness = client.provider.awareness!;
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, 1);
  encoding.writeVarUint(encoder, clientId);
  encoding.writeVarUint(encoder, (awareness.meta.get(clientId)?.clock ?? 0) + 10);
  encoding.writeVarString(encoder, JSON.stringify(state));
  // The provider sends every change to its awareness that did not come from the server.
  applyAwarenessUpdate(awareness, encoding.toUint8Array(encoder), 'forged');
}

async function listed(server: ServerProcess, name: string): Promise<{ users: string[]; complete: boolean }> {
  const { users, complete } = await presence(server, name);
  return { users: users.map((user) => `${user.userId}@${user.instance}`).sort(), complete };
}

/** Two places to connect: the two instances of a cluster, or one instance twice. */
type Setup = { title: string; skip: boolean; servers(): Promise<[ServerProcess, ServerProcess]> };
const setups: Setup[] = [
  {
    title: 'presence on one instance',
    skip: false,
    async servers() {
      const server = await single();
      return [server, server];
    },
  },
  // Instances share one database: the embedded PGlite is one process's, so this needs PostgreSQL.
  { title: postgresTitle('presence across instances'), skip: !postgresUrl, servers: async () => (await start([{}, {}])).servers as [ServerProcess, ServerProcess] },
];

for (const setup of setups) {
  describe.skipIf(setup.skip)(setup.title, () => {
    it('the first state a client sends already carries its token\'s identity; a CSS hex colour is kept, anything else dropped', async () => {
      const [one, two] = await setup.servers();
      const name = 'acme/quote/identity';
      const bob = await open(two, name, 'bob');
      const carol = await open(one, name, 'carol');
      const mallory = connect(one, name, await token({ sub: 'mallory', name: 'MALLORY' }));
      const shown = [bob, carol].map((observer) => usersShown(observer, mallory));
      // Set before the socket opens: Hocuspocus handles this first state while the connection is being set up.
      mallory.provider.setAwarenessField('user', { id: 'alice', name: 'Alice', color: '#0a0' });
      mallory.provider.setAwarenessField('status', 'editing');
      await synced(mallory);
      for (const observer of [bob, carol]) await waitFor('mallory editing', () => stateOf(observer, mallory)?.status === 'editing');
      for (const users of shown) expect([...users]).toEqual([JSON.stringify({ id: 'mallory', name: 'MALLORY', color: '#0a0' })]);

      const colors: Array<[unknown, string | undefined]> = [
        ['#0af', '#0af'],
        ['#00AAFF', '#00AAFF'],
        ['#00aaff80', '#00aaff80'],
        ['red', undefined],
        ['#00aaf', undefined],
        ['#0af;background:url(https://evil.example/x)', undefined],
        ['javascript:alert(1)', undefined],
        [0xff0000, undefined],
        [{ r: 255 }, undefined],
      ];
      for (const [round, [color, kept]] of colors.entries()) {
        mallory.provider.awareness!.setLocalState({ user: { id: 'alice', color }, round });
        for (const observer of [bob, carol]) {
          const state = await waitFor(`round ${round} seen`, () => stateOf(observer, mallory)?.round === round && stateOf(observer, mallory));
          expect(state.user).toEqual({ id: 'mallory', name: 'MALLORY', ...(kept && { color: kept }) });
        }
      }
    });

    it('a connection cannot write the awareness state of another live client, relayed or local; a client that reconnects keeps its own', async () => {
      const [one, two] = await setup.servers();
      const name = 'acme/quote/takeover';
      const alice = await open(one, name, 'alice'); // across instances, the second knows her state only as relayed
      const dave = await open(two, name, 'dave');
      const mallory = await open(two, name, 'mallory');
      const carol = await open(two, name, 'carol');
      alice.provider.setAwarenessField('status', 'editing');
      alice.provider.setAwarenessField('focus', { field: 'title' });
      dave.provider.setAwarenessField('focus', { lineId: 'l1', field: 'quantity' });
      const victims = await waitFor('alice\'s and dave\'s states where mallory is', () => {
        const states = [stateOf(carol, alice), stateOf(carol, dave)];
        return states.every((state) => state?.focus) && structuredClone(states as Array<Record<string, any>>);
      });

      for (const victim of [alice, dave]) writeStateOf(mallory, victim.doc.clientID, { user: { id: 'mallory' }, status: 'idle', focus: { field: 'hijacked' } });
      // Sent after the forgeries on the same connection: once carol has it, she would have them.
      mallory.provider.setAwarenessField('status', 'editing');
      await waitFor('mallory\'s own state', () => stateOf(carol, mallory)?.status === 'editing');
      expect([stateOf(carol, alice), stateOf(carol, dave)]).toEqual(victims);
      expect(victims.map((state) => state.user.id)).toEqual(['alice', 'dave']);
      const users = (await presence(two, name)).users;
      expect(users.find((user) => user.userId === 'dave')).toMatchObject({ focus: { lineId: 'l1', field: 'quantity' } });

      // Dave comes back on a new connection: his state is known here, yet still his to write, and it leaves with him.
      await goOffline(dave);
      await waitFor('dave\'s state gone', () => stateOf(carol, dave) === undefined);
      dave.provider.connect();
      await synced(dave);
      for (const field of ['notes', 'customerName']) {
        dave.provider.setAwarenessField('focus', { field });
        await waitFor(`dave's focus on ${field}`, () => stateOf(carol, dave)?.focus?.field === field);
      }
      const daveListed = (await presence(two, name)).users.find((user) => user.userId === 'dave');
      expect(daveListed).toMatchObject({ status: 'viewing', focus: { field: 'customerName' } });
      dave.provider.destroy();
      // Well before y-protocols would drop it as outdated (30 s).
      await waitFor('dave\'s state gone with his connection', () => stateOf(carol, dave) === undefined, 5_000);
    });
  });
}

describe.skipIf(!postgresUrl)(postgresTitle('presence across instances, by Redis'), () => {
  // Its waits add up to more than the default 120 s (the TTL twice, Redis's return, y-protocols' 30 s):
  // with room for all of them, a step that never happens fails under its own name.
  it('presence expires by Redis\'s clock: a skewed instance stays listed, Redis away answers incomplete, a killed instance\'s users drop off within the TTL and its clients get their state back elsewhere', { timeout: 240_000 }, async () => {
    // Instance 1's clock runs a minute behind: no expiry may depend on it.
    const { servers, redis } = await start([skewedClock(-60_000), {}]);
    const [one, two] = servers as [ServerProcess, ServerProcess];
    const balancer = await new TcpProxy({ host: '127.0.0.1', port: one.port }).listen();
    defer(() => balancer.close());
    const inspector = new Redis(redis.url);
    inspector.on('error', () => {}); // while the test stops Redis
    defer(() => inspector.disconnect());
    const name = 'acme/quote/board';
    const alice = await open(`ws://127.0.0.1:${balancer.port}`, name, 'alice');
    alice.provider.setAwarenessField('focus', { field: 'title' });
    const bob = await open(two, name, 'bob');
    const both = { users: ['alice@instance-1', 'bob@instance-2'], complete: true };
    await waitFor('both listed on instance 2', async () => isDeepStrictEqual(await listed(two, name), both));
    const { since } = (await presence(two, name)).users.find((user) => user.userId === 'alice')!;
    expect(Date.parse(since)).toBeLessThan(Date.now() - 50_000); // instance 1's clock is behind indeed

    // Longer than the TTL: instance 1 keeps renewing its key, and every read lists its user.
    const reading = Date.now();
    while (Date.now() - reading < BOARD_TTL_MS + 5_000) {
      expect(await listed(two, name)).toEqual(both);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const ttl = await inspector.pttl(`concord:presence:{${name}}:instance-1`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(BOARD_TTL_MS);

    await redis.stop();
    expect(await listed(two, name)).toEqual({ users: ['bob@instance-2'], complete: false });
    await redis.start();
    // Redis came back empty: the instances' next publications fill the board again.
    await waitFor('both listed again', async () => isDeepStrictEqual(await listed(two, name), both), 30_000);

    balancer.retarget({ host: '127.0.0.1', port: two.port });
    await one.stop('SIGKILL');
    await waitFor('instance 1\'s users gone', async () => !(await listed(two, name)).users.includes('alice@instance-1'), BOARD_TTL_MS + 3_000);
    expect(await inspector.exists(`concord:presence:{${name}}:instance-1`)).toBe(0);

    // Alice reconnected to instance 2, where her client id's state is relayed from instance 1: hers
    // again once it is 30 s old (her provider renews every 15 s), and from then on hers to change.
    await waitFor('alice\'s focus listed from instance 2', async () => {
      const { users } = await presence(two, name);
      return users.some((user) => user.userId === 'alice' && user.instance === 'instance-2' && isDeepStrictEqual(user.focus, { field: 'title' }));
    }, 60_000);
    alice.provider.setAwarenessField('focus', { field: 'notes' });
    await waitFor('bob sees alice\'s new focus', () => stateOf(bob, alice)?.focus?.field === 'notes');
    expect(stateOf(bob, alice)!.user).toMatchObject({ id: 'alice', name: 'ALICE' });
  });
});
