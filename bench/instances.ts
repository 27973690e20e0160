/**
 * Cross-instance delivery: two server processes on one PostgreSQL and one
 * Redis, a writer on the first, a reader on each. For every edit (and every
 * cursor move) the time from the writer's change to the reader seeing it;
 * the reader on the writer's own instance gives the figure without Redis.
 *
 *   node bench/instances.ts [--rate 50] [--seconds 10]
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { HocuspocusProvider } from '@hocuspocus/provider';
import { Command } from 'commander';
import * as Y from 'yjs';
import { createStorage } from '../test/support/database.ts';
import { RedisProcess } from '../test/support/redis.ts';
import { ServerProcess } from '../test/support/server.ts';
import { token } from '../test/support/tokens.ts';
import { acknowledged, fixed, percentile, stealMeter } from './support.ts';

const options = new Command()
  .option('--rate <n>', 'edits (and cursor moves) per second', (value) => Number(value), 50)
  .option('--seconds <n>', 'how long each phase lasts', (value) => Number(value), 10)
  .parse()
  .opts<{ rate: number; seconds: number }>();
const adminUrl = process.env.BENCH_DATABASE_URL || 'postgres://concord:concord@127.0.0.1:5432/postgres';

const storage = await createStorage('postgres', adminUrl);
const redis = await new RedisProcess().start();
const servers = [1, 2].map((n) => new ServerProcess({ ...storage.env, REDIS_URL: redis.url, INSTANCE_ID: `bench-${n}` }));
const providers: HocuspocusProvider[] = [];
const steal = stealMeter();
try {
  await Promise.all(servers.map((server) => server.start()));
  const name = `bench/quote/${randomBytes(4).toString('hex')}`;
  const writer = await open(servers[0]!, name, 'writer');
  const local = await open(servers[0]!, name, 'local-reader');
  const remote = await open(servers[1]!, name, 'remote-reader');

  const edits = { local: [] as number[], remote: [] as number[] };
  const cursors = { local: [] as number[], remote: [] as number[] };
  const sentAt = new Map<number, number>();
  // A probe overtaken by the next one (both arrive in one message) counts as delivered with it.
  const deliver = (latencies: number[], upTo: number, from: number, sign: 1 | -1) => {
    const now = performance.now();
    for (let i = from + 1; i <= upTo; i++) latencies.push(now - sentAt.get(sign * i)!);
  };
  for (const [where, reader] of [['local', local], ['remote', remote]] as const) {
    let lastEdit = 0;
    let lastCursor = 0;
    reader.document.getMap('quote').observe((event) => {
      const probe = reader.document.getMap('quote').get('probe');
      if (!event.keysChanged.has('probe') || typeof probe !== 'number' || probe <= lastEdit) return;
      deliver(edits[where], probe, lastEdit, 1);
      lastEdit = probe;
    });
    reader.awareness!.on('change', () => {
      const probe = -(reader.awareness!.getStates().get(writer.document.clientID)?.cursor?.probe ?? 0);
      if (probe <= lastCursor) return;
      deliver(cursors[where], probe, lastCursor, -1);
      lastCursor = probe;
    });
  }

  const count = options.rate * options.seconds;
  // Warm-up, unmeasured: JIT, pool connections, Redis subscriptions.
  for (let i = 0; i < 100; i++) writer.document.getMap('quote').set('warmup', i);
  await acknowledged(writer);
  await sleep(500);

  for (let i = 1; i <= count; i++) {
    sentAt.set(i, performance.now());
    writer.document.getMap('quote').set('probe', i);
    await sleep(1000 / options.rate);
  }
  await acknowledged(writer);
  await sleep(1000);
  for (let i = 1; i <= count; i++) {
    sentAt.set(-i, performance.now());
    writer.setAwarenessField('cursor', { probe: -i });
    await sleep(1000 / options.rate);
  }
  await sleep(1000);

  console.log(`\n${count} edits and ${count} cursor moves at ${options.rate}/s; writer on instance 1\n`);
  console.log('| delivered to | what | received | p50 ms | p99 ms | max ms |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const [what, series] of [['edit', edits], ['cursor', cursors]] as const) {
    for (const where of ['local', 'remote'] as const) {
      const values = series[where];
      const [p50, p99, max] = [0.5, 0.99, 1].map((q) => fixed(percentile(values, q), 2));
      console.log(`| ${where === 'local' ? 'same instance' : 'other instance (Redis)'} | ${what} | ${values.length}/${count} | ${p50} | ${p99} | ${max} |`);
    }
  }
  console.log(`\nCPU steal during the run: ${fixed((steal() ?? NaN) * 100, 1)} %`);
} finally {
  for (const provider of providers) provider.destroy();
  await Promise.all(servers.map((server) => server.stop()));
  await redis.stop();
  await storage.drop();
}

async function open(server: ServerProcess, name: string, sub: string) {
  const provider = new HocuspocusProvider({
    url: server.wsUrl,
    name,
    token: await token({ sub, tenant: 'bench' }),
    document: new Y.Doc(),
    onAuthenticationFailed: ({ reason }) => console.error(`${sub} was refused: ${reason}`),
  });
  providers.push(provider);
  while (!provider.isSynced) await sleep(10);
  return provider;
}
