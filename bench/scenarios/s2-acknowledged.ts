import type { Phase } from '../harness/load.ts';
import { acknowledgedRate, ackLatencies, loadNote, runPhase, type RunContext, type Scenario } from '../harness/scenario.ts';
import { fixed, spread } from '../harness/stats.ts';
import { editors } from './clients.ts';
import { verifyStored } from './stored.ts';

const PACED_RATE = 500;
// Edits each full-speed writer keeps unacknowledged: enough that the round trip is never what limits it.
const WINDOW = 100;
const MANY_WRITERS = 10;

/** What does durability cost: acknowledgements, sent only once an update is committed, and how many per second. */
export const acknowledged: Scenario = {
  id: 'S2',
  title: 'acknowledged throughput',
  description:
    `Acknowledgement: from an edit leaving the client to its SyncStatus coming back — in Concord only after the update, its audit rows and table rows are committed. ` +
    `One writer paced at ${PACED_RATE} updates/s (10 s); one writer at full speed (${WINDOW} edits always in flight, 10 s); ${MANY_WRITERS} writers at full speed, each in a quote of its own. ` +
    'On PostgreSQL (production), then the first two again on the embedded PGlite (`npm start` without DATABASE_URL). ' +
    'Afterwards the PostgreSQL log is checked against every acknowledged edit. Bare Hocuspocus stores nothing: its figures are the same run for both.',
  rows: [
    { key: 'pacedP50', label: `ack p50 at ${PACED_RATE} updates/s`, unit: 'ms', digits: 2 },
    { key: 'pacedP99', label: `ack p99 at ${PACED_RATE} updates/s`, unit: 'ms', digits: 2, bar: { max: 15 } },
    { key: 'oneRate', label: 'one writer, full speed: acknowledged', unit: 'updates/s', digits: 0, bar: { min: 5_000 } },
    { key: 'oneP99', label: 'one writer, full speed: ack p99', unit: 'ms', digits: 1 },
    { key: 'manyRate', label: `${MANY_WRITERS} writers, full speed: acknowledged`, unit: 'updates/s', digits: 0, bar: { min: 12_000 } },
    { key: 'manyP99', label: `${MANY_WRITERS} writers, full speed: ack p99`, unit: 'ms', digits: 1 },
    { key: 'pglitePacedP99', label: `PGlite: ack p99 at ${PACED_RATE} updates/s`, unit: 'ms', digits: 2 },
    { key: 'pgliteOneRate', label: 'PGlite: one writer, full speed', unit: 'updates/s', digits: 0 },
  ],
  peers: ['y/hub (laptop i7): one writer paced at ~990 updates/s'],
  async measure(run) {
    const figures = await measureOn(run, 'postgres');
    if (run.kind === 'bare') return { ...figures, pglitePacedP99: figures.pacedP99!, pgliteOneRate: figures.oneRate! };
    const pglite = await measureOn(run, 'pglite');
    return { ...figures, pglitePacedP99: pglite.pacedP99!, pgliteOneRate: pglite.oneRate! };
  },
};

async function measureOn(run: RunContext, storage: 'postgres' | 'pglite'): Promise<Record<string, number>> {
  const [seconds, warmUp] = run.smoke ? [1, 0.5] : [10, 2];
  const full = storage === 'postgres';
  const deployment = await run.deploy({ storage });
  const pool = run.load(2);
  const documents = ['s2-paced', 's2-one', ...(full ? Array.from({ length: MANY_WRITERS }, (_, i) => `s2-many-${i}`) : [])];
  await pool.open([
    ...editors(deployment, documents[0]!, 1, { prefix: 'paced', group: 'paced', record: false }),
    ...editors(deployment, documents[1]!, 1, { prefix: 'one', group: 'one', record: false }),
    ...documents.slice(2).flatMap((document, i) => editors(deployment, document, 1, { prefix: `many-${i}`, group: 'many', record: false })),
  ]);
  let edits = 0;
  const phase = async (activity: Phase, duration: number, name: string) => {
    const outcome = await runPhase(deployment, pool, activity, duration);
    edits += outcome.reports.reduce((sum, r) => sum + r.edits, 0);
    run.note(loadNote(`${storage}, ${name}`, outcome));
    return outcome;
  };
  const paced = { paced: { editsPerSecond: PACED_RATE, timeAcks: true } };
  const one = { one: { window: WINDOW } };
  // Unmeasured first: JIT warm-up and opening the pool's database connections stay out of the figures.
  await phase(paced, warmUp, 'warm-up');
  const pacedOutcome = await phase(paced, seconds, `paced at ${PACED_RATE}/s`);
  await phase(one, warmUp, 'warm-up');
  const oneOutcome = await phase(one, seconds, 'one writer, full speed');
  const pacedAcks = spread(ackLatencies(pacedOutcome.reports));
  const figures: Record<string, number> = {
    pacedP50: pacedAcks.p50,
    pacedP99: pacedAcks.p99,
    oneRate: acknowledgedRate(oneOutcome),
    oneP99: spread(ackLatencies(oneOutcome.reports)).p99,
  };
  run.note(`${storage}, paced: ${fixed(pacedOutcome.reports.reduce((sum, r) => sum + r.edits, 0) / pacedOutcome.seconds, 0)} edits/s offered, ack max ${fixed(pacedAcks.max, 1)} ms`);
  if (!full) return figures;

  const manyOutcome = await phase({ many: { window: WINDOW } }, seconds, `${MANY_WRITERS} writers, full speed`);
  figures.manyRate = acknowledgedRate(manyOutcome);
  figures.manyP99 = spread(ackLatencies(manyOutcome.reports)).p99;
  if (run.kind === 'concord') run.note(await verifyStored(deployment, documents, edits + documents.length));
  return figures;
}
