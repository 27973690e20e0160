import { acknowledgedRate, deliveries, deliveryNote, loadNote, runPhase, type RunContext, type Scenario } from '../harness/scenario.ts';
import { editors } from './clients.ts';

const SIZES = [1, 2, 3];
const WRITERS = 12;
// Edits each full-speed writer keeps unacknowledged (as in S2).
const WINDOW = 100;
const READERS = 30;
const EDITS_PER_SECOND = 2;

/** Does another instance help: the same load over one, two and three instances sharing one PostgreSQL and one Redis. */
export const scaleOut: Scenario = {
  id: 'S10',
  title: 'scale-out',
  description:
    `The same load on one, two and three instances sharing one Redis of the benchmark's own (Concord: one PostgreSQL database; bare Hocuspocus: its Redis extension), clients spread over the instances in turn: ` +
    `${WRITERS} writers at full speed, each in a quote of its own (${WINDOW} edits in flight, 10 s), then ${READERS} editors of one quote making ${EDITS_PER_SECOND} edits a second each (delivery to the other ${READERS - 1}, across instances through Redis, 20 s). ` +
    'On this machine every instance shares the same two cores with PostgreSQL, Redis and the load: the figures show what an instance costs and what it relays, not more hardware.',
  rows: SIZES.flatMap((size) => [
    { key: `rate${size}`, label: `${size} instance${size > 1 ? 's' : ''}: ${WRITERS} writers, acknowledged`, unit: 'updates/s', digits: 0 },
    { key: `fanP99${size}`, label: `${size} instance${size > 1 ? 's' : ''}: fan-out delivery p99`, unit: 'ms', digits: 2 },
  ]),
  async measure(run) {
    const figures: Record<string, number> = {};
    for (const size of SIZES) Object.assign(figures, await measureAt(run, size));
    return figures;
  },
};

async function measureAt(run: RunContext, size: number): Promise<Record<string, number>> {
  const [seconds, fanSeconds, warmUp, readers] = run.smoke ? [1, 1, 0.5, 4] : [10, 20, 2, READERS];
  const deployment = await run.deploy({ instances: size, redis: true });
  const pool = run.load(2);
  try {
    await pool.open([
      ...Array.from({ length: WRITERS }, (_, i) => editors(deployment, `s10-writer-${i}`, 1, { prefix: `writer-${i}`, group: 'writers', record: false, instance: i % size })).flat(),
      ...Array.from({ length: readers }, (_, i) => editors(deployment, 's10-fan', 1, { prefix: `reader-${i}`, group: 'fan', instance: i % size })).flat(),
    ]);
    const writing = { writers: { window: WINDOW } };
    await runPhase(deployment, pool, writing, warmUp);
    const written = await runPhase(deployment, pool, writing, seconds);
    const fanning = { fan: { editsPerSecond: EDITS_PER_SECOND } };
    await runPhase(deployment, pool, fanning, warmUp);
    const fanned = await runPhase(deployment, pool, fanning, fanSeconds);
    const delivered = deliveries(pool, fanned.reports, 'updates');
    run.note(loadNote(`${size} instance(s), ${WRITERS} writers`, written));
    run.note(loadNote(`${size} instance(s), fan-out`, fanned));
    run.note(`${size} instance(s), fan-out: ${deliveryNote(delivered)}`);
    return { [`rate${size}`]: acknowledgedRate(written), [`fanP99${size}`]: delivered.p99 };
  } finally {
    await pool.close();
  }
}
