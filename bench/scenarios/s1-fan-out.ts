import { deliveries, deliveryNote, loadNote, runPhase, type Scenario } from '../harness/scenario.ts';
import { editors } from './clients.ts';

const EDITS_PER_SECOND = 2;

/** How fast do edits reach the others: many people typing in one quote. */
export const fanOut: Scenario = {
  id: 'S1',
  title: 'fan-out',
  description:
    'One quote, 50 editors (light clients in 2 load processes), each making 2 edits a second (a quantity or unit price on a line of their own, a keystroke in the notes, the title). ' +
    'Delivery: from an edit leaving its sender to its arrival at each of the other 49, p50 and p99 over a 30 s window after a warm-up. Concord logs, audits and projects every edit.',
  rows: [
    { key: 'p50', label: 'delivery p50', unit: 'ms', digits: 2 },
    { key: 'p99', label: 'delivery p99', unit: 'ms', digits: 2, bar: { maxRatio: 1.25 } },
    { key: 'cpu', label: 'server CPU', unit: '% of a core', digits: 0, bar: { maxRatio: 1.3 } },
    // Without the kernel's share (socket reads and writes above all): what each server's own code costs.
    { key: 'userCpu', label: 'server CPU in user space', unit: '% of a core', digits: 0 },
  ],
  peers: ['y/hub (laptop i7): one writer paced at ~990 updates/s, delivery p99 4.4 ms; with 1,500 watchers p99 44 ms'],
  async measure(run) {
    const [count, seconds, warmUp] = run.smoke ? [10, 2, 1] : [50, 30, 5];
    const deployment = await run.deploy();
    const pool = run.load(2);
    await pool.open(editors(deployment, 's1', count, { prefix: 'editor' }));
    const phase = { editor: { editsPerSecond: EDITS_PER_SECOND } };
    await runPhase(deployment, pool, phase, warmUp);
    const outcome = await runPhase(deployment, pool, phase, seconds);
    const delivered = deliveries(pool, outcome.reports, 'updates');
    run.note(loadNote(`${count} editors, ${seconds} s`, outcome));
    run.note(deliveryNote(delivered));
    return { p50: delivered.p50, p99: delivered.p99, cpu: outcome.serverCores * 100, userCpu: outcome.serverUserCores * 100 };
  },
};
