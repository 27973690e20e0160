import { deliveries, deliveryNote, loadNote, runPhase, type Scenario } from '../harness/scenario.ts';
import { editors } from './clients.ts';

const PER_SECOND = 50;

/** Several instances behind one address: an edit or a cursor made on one must reach people on the other. */
export const acrossInstances: Scenario = {
  id: 'S5',
  title: 'across instances',
  description:
    "Two server instances sharing one Redis of the benchmark's own (Concord: REDIS_URL, one PostgreSQL database; bare Hocuspocus: its Redis extension). " +
    `One writer on the first instance makes ${PER_SECOND} edits a second in a quote for 10 s, then ${PER_SECOND} cursor moves a second; 5 readers of that quote on each instance. ` +
    'Delivery writer to readers on the other instance (through Redis), and to those on its own for comparison.',
  rows: [
    { key: 'editRemoteP50', label: 'edit, other instance: delivery p50', unit: 'ms', digits: 2 },
    { key: 'editRemoteP99', label: 'edit, other instance: delivery p99', unit: 'ms', digits: 2, bar: { max: 25 } },
    { key: 'editLocalP99', label: 'edit, same instance: delivery p99', unit: 'ms', digits: 2 },
    { key: 'cursorRemoteP99', label: 'cursor, other instance: delivery p99', unit: 'ms', digits: 2 },
  ],
  async measure(run) {
    const [readers, seconds] = run.smoke ? [2, 2] : [5, 10];
    const deployment = await run.deploy({ instances: 2 });
    const pool = run.load(2);
    await pool.open([
      ...editors(deployment, 's5', 1, { prefix: 'writer', group: 'writer', record: false, instance: 0 }),
      ...editors(deployment, 's5', readers, { prefix: 'local', group: 'local', lines: 0, instance: 0 }),
      ...editors(deployment, 's5', readers, { prefix: 'remote', group: 'remote', lines: 0, instance: 1 }),
    ]);
    const edits = { writer: { editsPerSecond: PER_SECOND } };
    // The warm-up doubles as the check that the deployment relays at all.
    const warmUp = await runPhase(deployment, pool, edits, run.smoke ? 1 : 3);
    if (deliveries(pool, warmUp.reports, 'updates', 'remote').count === 0) throw new Error('edits made on the first instance never reached the readers on the second');
    const editOutcome = await runPhase(deployment, pool, edits, seconds);
    const [remote, local] = (['remote', 'local'] as const).map((group) => deliveries(pool, editOutcome.reports, 'updates', group));
    const cursorOutcome = await runPhase(deployment, pool, { writer: { awarenessPerSecond: PER_SECOND } }, seconds);
    const cursors = deliveries(pool, cursorOutcome.reports, 'awareness', 'remote');
    run.note(loadNote(`edits, ${seconds} s`, editOutcome));
    run.note(`edits to the other instance: ${deliveryNote(remote!)}; to the same instance: ${deliveryNote(local!)}`);
    run.note(`cursors to the other instance: ${deliveryNote(cursors)}; to the same instance p99 ${deliveries(pool, cursorOutcome.reports, 'awareness', 'local').p99.toFixed(1)} ms`);
    return { editRemoteP50: remote!.p50, editRemoteP99: remote!.p99, editLocalP99: local!.p99, cursorRemoteP99: cursors.p99 };
  },
};
