import { deliveries, deliveryNote, loadNote, NotAvailable, runPhase, type Scenario } from '../harness/scenario.ts';
import { editors } from './clients.ts';

const EDITS_PER_SECOND = 10;

/** Several instances behind one address: an edit made on one must reach people on the other. */
export const acrossInstances: Scenario = {
  id: 'S5',
  title: 'across instances',
  description:
    `Two server instances sharing one Redis of the benchmark's own (Concord: REDIS_URL and one PostgreSQL database; bare Hocuspocus: its Redis extension). ` +
    `One writer on the first instance makes ${EDITS_PER_SECOND} edits a second in a quote; 10 readers of that quote on the second instance. Delivery writer to readers, p50 and p99 over 20 s.`,
  rows: [
    { key: 'p50', label: 'delivery p50', unit: 'ms', digits: 2 },
    { key: 'p99', label: 'delivery p99', unit: 'ms', digits: 2, bar: { max: 25 } },
  ],
  async measure(run) {
    const [readers, seconds] = run.smoke ? [3, 2] : [10, 20];
    const deployment = await run.deploy({ instances: 2 });
    const pool = run.load(2);
    await pool.open([
      ...editors(deployment, 's5', 1, { prefix: 'writer', group: 'writer', record: false, instance: 0 }),
      ...editors(deployment, 's5', readers, { prefix: 'reader', group: 'reader', lines: 0, instance: 1 }),
    ]);
    const phase = { writer: { editsPerSecond: EDITS_PER_SECOND } };
    // The warm-up doubles as the check that the deployment relays at all.
    const warmUp = await runPhase(deployment, pool, phase, run.smoke ? 1 : 3);
    if (deliveries(pool, warmUp.reports, 'updates').count === 0) {
      throw new NotAvailable(`edits made on the first instance never reached readers on the second (${run.kind === 'concord' ? 'Concord does not relay between instances through REDIS_URL yet' : 'the Redis extension did not relay'})`);
    }
    const outcome = await runPhase(deployment, pool, phase, seconds);
    const delivered = deliveries(pool, outcome.reports, 'updates');
    run.note(loadNote(`${seconds} s`, outcome));
    run.note(deliveryNote(delivered));
    return { p50: delivered.p50, p99: delivered.p99 };
  },
};
