import { expect, it } from 'vitest';
import { connectRedis } from '../src/cluster/redis.ts';
import { UnloggedBeacon } from '../src/cluster/unlogged-beacon.ts';
import { createLogger } from '../src/log.ts';
import { waitFor } from './support/clients.ts';
import { RedisProcess } from './support/redis.ts';
import { TcpProxy } from './support/tcp-proxy.ts';

it('tells whether another live instance holds unlogged updates of a document, and fails rather than waits while Redis is silent', async () => {
  const redis = await new RedisProcess().start();
  // The asking instance reaches Redis through a link the test can silence: its connection stays open, its answers stop.
  const link = await new TcpProxy({ host: '127.0.0.1', port: redis.port }).listen();
  const log = createLogger('silent');
  const askingClient = connectRedis(`redis://127.0.0.1:${link.port}`, log);
  const otherClient = connectRedis(redis.url, log);
  const othersPending = new Set<string>();
  const asking = new UnloggedBeacon(askingClient, 'instance-1', () => [], log);
  const other = new UnloggedBeacon(otherClient, 'instance-2', () => [...othersPending], log);
  try {
    const name = 'acme/quote/beacon';
    await waitFor('Redis ready', () => askingClient.status === 'ready' && otherClient.status === 'ready');
    expect(await asking.othersHoldUnlogged(name)).toBe(false);
    othersPending.add(name);
    await waitFor('the other instance\'s beacon lit', () => asking.othersHoldUnlogged(name));
    othersPending.delete(name);
    await waitFor('the other instance\'s beacon out', async () => !(await asking.othersHoldUnlogged(name)));

    link.stall();
    await expect(asking.othersHoldUnlogged(name)).rejects.toThrow(/did not answer/);
  } finally {
    asking.close();
    other.close();
    askingClient.disconnect();
    otherClient.disconnect();
    await link.close();
    await redis.stop();
  }
});
