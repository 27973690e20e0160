import { deliveries, deliveryNote, loadNote, runPhase, type Scenario } from '../harness/scenario.ts';
import { editors } from './clients.ts';

/** What happens with many cursors: everyone in one document moving theirs. */
export const awareness: Scenario = {
  id: 'S4',
  title: 'awareness',
  description:
    '100 clients in one quote (4 load processes) moving their cursors (an awareness update each) once a second for 20 s, then ten times a second for 10 s. ' +
    'Delivery: from a cursor move leaving its client to its arrival at each of the other 99; server CPU over each phase.',
  rows: [
    { key: 'slowP50', label: 'cursors 1/s: delivery p50', unit: 'ms', digits: 1 },
    { key: 'slowP95', label: 'cursors 1/s: delivery p95', unit: 'ms', digits: 1, bar: { max: 50 } },
    { key: 'slowCpu', label: 'cursors 1/s: server CPU', unit: '% of a core', digits: 0 },
    { key: 'fastP95', label: 'cursors 10/s: delivery p95', unit: 'ms', digits: 1 },
    { key: 'fastCpu', label: 'cursors 10/s: server CPU', unit: '% of a core', digits: 0 },
  ],
  peers: ["y/hub (laptop i7): awareness with 100 watchers p95 1.8 s; 500 clients sending presence once a second use about one core"],
  async measure(run) {
    const [clients, slowSeconds, fastSeconds] = run.smoke ? [10, 2, 1] : [100, 20, 10];
    const deployment = await run.deploy();
    const pool = run.load(4);
    await pool.open(editors(deployment, 's4', clients, { prefix: 'viewer', lines: 0 }));
    const figures: Record<string, number> = {};
    for (const [name, perSecond, seconds] of [['slow', 1, slowSeconds], ['fast', 10, fastSeconds]] as const) {
      const outcome = await runPhase(deployment, pool, { editor: { awarenessPerSecond: perSecond } }, seconds);
      const delivered = deliveries(pool, outcome.reports, 'awareness');
      run.note(loadNote(`${perSecond}/s`, outcome));
      run.note(`${perSecond}/s: ${deliveryNote(delivered)}`);
      Object.assign(figures, { [`${name}P50`]: delivered.p50, [`${name}P95`]: delivered.p95, [`${name}Cpu`]: outcome.serverCores * 100 });
    }
    return figures;
  },
};
