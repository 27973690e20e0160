import { setTimeout as sleep } from 'node:timers/promises';
import { loadNote, runPhase, type Scenario } from '../harness/scenario.ts';
import { fixed } from '../harness/stats.ts';
import { editors } from './clients.ts';

const CONNECTIONS_PER_DOCUMENT = 5;

/** What an open but quiet connection costs: people who have a quote open and are not typing. */
export const idle: Scenario = {
  id: 'S7',
  title: 'idle connections',
  description:
    `10,000 authenticated connections (4 load processes) on 2,000 quotes, ${CONNECTIONS_PER_DOCUMENT} each, doing what an idle provider does: renewing their awareness state every 15 s. ` +
    'Memory per connection: RSS growth while the second to fifth connection of every document open, per connection; memory per document: RSS growth while the first ones open, per document; ' +
    'CPU per connection: server CPU over 60 s of idling, per connection per second.',
  rows: [
    { key: 'perConnection', label: 'memory per connection', unit: 'KiB', digits: 1 },
    { key: 'perDocument', label: 'memory per document (with 1 connection)', unit: 'KiB', digits: 1 },
    { key: 'cpuPerConnection', label: 'CPU per connection per second', unit: 'µs', digits: 2 },
    { key: 'rss', label: 'server RSS with all connections', unit: 'MiB', digits: 0 },
  ],
  peers: ['y/hub (laptop i7): 1,500 idle connections cost about 6 µs of CPU per connection per second'],
  async measure(run) {
    // After the connections open, the server gets `settleMs` to finish what opening them started before memory is read.
    const [documents, seconds, settleMs] = run.smoke ? [40, 3, 500] : [2_000, 60, 5_000];
    const connections = documents * CONNECTIONS_PER_DOCUMENT;
    const deployment = await run.deploy();
    const pool = run.load(4);
    const clientsOf = (d: number) => editors(deployment, `s7-${d}`, CONNECTIONS_PER_DOCUMENT, { prefix: `d${d}`, lines: 0, record: false, group: 'idle' });
    const rssAfter = async (open: () => Promise<void>) => {
      await open();
      await sleep(settleMs);
      return deployment.usage().rssBytes;
    };
    const idleRss = deployment.usage().rssBytes;
    run.progress(`opening ${documents} documents`);
    const firstsRss = await rssAfter(() => pool.open(Array.from({ length: documents }, (_, d) => clientsOf(d)[0]!), 25));
    run.progress(`opening ${connections - documents} more connections`);
    const allRss = await rssAfter(() => pool.open(Array.from({ length: documents }, (_, d) => clientsOf(d).slice(1)).flat(), 25));
    run.progress(`idling for ${seconds} s`);
    const outcome = await runPhase(deployment, pool, {}, seconds);
    const closed = outcome.reports.reduce((sum, r) => sum + r.problemCount, 0);
    if (closed) throw new Error(`${closed} idle connection(s) were closed or refused: ${outcome.reports.flatMap((r) => r.problems).join(' | ')}`);
    run.note(loadNote(`${connections} idle connections, ${seconds} s`, outcome));
    run.note(`RSS: idle server ${fixed(idleRss / 2 ** 20, 0)} MiB, with one connection per document ${fixed(firstsRss / 2 ** 20, 0)} MiB, with all ${fixed(allRss / 2 ** 20, 0)} MiB`);
    return {
      perConnection: (allRss - firstsRss) / (connections - documents) / 1024,
      perDocument: (firstsRss - idleRss) / documents / 1024,
      cpuPerConnection: (outcome.serverCores * 1e6) / connections,
      rss: outcome.peakRssBytes / 2 ** 20,
    };
  },
};
