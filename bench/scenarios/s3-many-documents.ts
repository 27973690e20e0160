import { deliveries, deliveryNote, loadNote, runPhase, type Scenario } from '../harness/scenario.ts';
import { fixed } from '../harness/stats.ts';
import { editors } from './clients.ts';

const CLIENTS_PER_DOCUMENT = 5;
const EDIT_EVERY_S = 5;
const MiB = 2 ** 20;

/** How many people fit on one machine: many small documents, each with a few people in it. */
export const manyDocuments: Scenario = {
  id: 'S3',
  title: 'many documents',
  description:
    `1,000 quotes with ${CLIENTS_PER_DOCUMENT} clients each (5,000 connections from 4 load processes), every client making one edit every ${EDIT_EVERY_S} s (1,000 edits/s in all). ` +
    'Delivery p99 over 60 s after a warm-up; server RSS at its highest (sampled every second); memory per document: RSS growth from the idle server to the end, over the documents (with their clients).',
  rows: [
    { key: 'p50', label: 'delivery p50', unit: 'ms', digits: 1 },
    { key: 'p99', label: 'delivery p99', unit: 'ms', digits: 1, bar: { max: 30, everyRun: true } },
    { key: 'rss', label: 'server RSS, highest', unit: 'MiB', digits: 0, bar: { max: 1_536 } },
    { key: 'perDocument', label: `memory per document (with ${CLIENTS_PER_DOCUMENT} clients)`, unit: 'KiB', digits: 0 },
    { key: 'cpu', label: 'server CPU', unit: '% of a core', digits: 0 },
  ],
  async measure(run) {
    const [documents, seconds, warmUp] = run.smoke ? [20, 3, 1] : [1_000, 60, 10];
    const deployment = await run.deploy();
    const idle = deployment.usage().rssBytes;
    const pool = run.load(4);
    run.progress(`opening ${documents * CLIENTS_PER_DOCUMENT} connections`);
    const openedAt = performance.now();
    await pool.open(Array.from({ length: documents }, (_, d) => editors(deployment, `s3-${d}`, CLIENTS_PER_DOCUMENT, { prefix: `d${d}` })).flat(), 25);
    run.note(`${documents * CLIENTS_PER_DOCUMENT} connections opened, synced and each added a line in ${fixed((performance.now() - openedAt) / 1000, 1)} s`);
    const phase = { editor: { editsPerSecond: 1 / EDIT_EVERY_S } };
    await runPhase(deployment, pool, phase, warmUp);
    run.progress(`measuring for ${seconds} s`);
    const outcome = await runPhase(deployment, pool, phase, seconds, 2_000);
    const delivered = deliveries(pool, outcome.reports, 'updates');
    run.note(loadNote(`${documents} documents, ${seconds} s`, outcome));
    run.note(`${deliveryNote(delivered)}; idle server RSS ${fixed(idle / MiB, 0)} MiB`);
    return {
      p50: delivered.p50,
      p99: delivered.p99,
      rss: outcome.peakRssBytes / MiB,
      perDocument: (outcome.rssBytes - idle) / documents / 1024,
      cpu: outcome.serverCores * 100,
    };
  },
};
