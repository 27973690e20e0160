import { Redis } from 'ioredis';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { synced, waitFor, type Client } from './support/clients.ts';
import { clusterFixture, presence, stateOf } from './support/cluster.ts';
import { postgresUrl } from './support/database.ts';
import type { ServerProcess } from './support/server.ts';
import { token } from './support/tokens.ts';

const { start, open, connect, defer } = clusterFixture();

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

async function listed(server: ServerProcess, name: string): Promise<{ users: string[]; complete: boolean }> {
  const { users, complete } = await presence(server, name);
  return { users: users.map((user) => `${user.userId}@${user.instance}`).sort(), complete };
}

const skipReason = postgresUrl ? '' : 'needs a real PostgreSQL: set TEST_DATABASE_URL';

describe.skipIf(!postgresUrl)(`presence across instances ${skipReason}`, () => {
  it('the first state a client sends already carries its token\'s identity; a CSS hex colour is kept, anything else dropped', async () => {
    const { servers } = await start([{}, {}]);
    const [one, two] = servers as [ServerProcess, ServerProcess];
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

  it('presence expires by Redis\'s clock: a skewed instance stays listed, Redis away answers incomplete and a killed instance\'s users drop off within the TTL', async () => {
    // Instance 1's clock runs a minute behind: no expiry may depend on it.
    const { servers, redis } = await start([skewedClock(-60_000), {}]);
    const [one, two] = servers as [ServerProcess, ServerProcess];
    const inspector = new Redis(redis.url);
    inspector.on('error', () => {}); // while the test stops Redis
    defer(() => inspector.disconnect());
    const name = 'acme/quote/board';
    await open(one, name, 'alice');
    await open(two, name, 'bob');
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

    await one.stop('SIGKILL');
    await waitFor('instance 1\'s users gone', async () => !(await listed(two, name)).users.includes('alice@instance-1'), BOARD_TTL_MS + 3_000);
    expect(await inspector.exists(`concord:presence:{${name}}:instance-1`)).toBe(0);
  });
});
