import { setTimeout as sleep } from 'node:timers/promises';
import { now } from '../harness/clock.ts';
import { TENANT, type Deployment } from '../harness/deployment.ts';
import { LightClient } from '../harness/light-client.ts';
import type { LoadPool } from '../harness/load.ts';
import type { RunContext, Scenario } from '../harness/scenario.ts';
import { fixed, spread } from '../harness/stats.ts';
import { editors } from './clients.ts';
import { verifyStored } from './stored.ts';

const DOCUMENT = 's6';
// A small document the restarted server loads first, so that the cold loads measure the document, not JIT compilation.
const WARM_UP_DOCUMENT = 's6-warm-up';
const WINDOW = 100;
const WAIT_MS = 180_000;

/** Admins reading history: any past version of a long-edited document, and loading such a document. */
export const history: Scenario = {
  id: 'S6',
  title: 'history',
  description:
    'One quote edited by one writer at full speed until it has 10,000 updates, then 100,000. At each size, `GET /api/documents/quote/:id/versions/:seq` (admin) for 50 random seqs one after another: p95 from request to the whole body. ' +
    'Cold load: the checkpoints written, the server restarted and warmed up on another document, a client connects; the time until the content arrives (median of 5, the document unloaded before each). Bare Hocuspocus keeps no history; its load is the sync of the same content held in memory.',
  rows: [
    { key: 'lookupSmall', label: 'version lookup at 10k updates, p95', unit: 'ms', digits: 1, bar: { max: 10 }, bareless: 'no history' },
    { key: 'lookupLarge', label: 'version lookup at 100k updates, p95', unit: 'ms', digits: 1, bar: { max: 50 }, bareless: 'no history' },
    { key: 'coldLoad', label: 'cold load of the 100k-update document, median', unit: 'ms', digits: 1, bar: { max: 200 } },
  ],
  async measure(run) {
    const [small, large, lookups, loads] = run.smoke ? [300, 1_500, 5, 2] : [10_000, 100_000, 50, 5];
    const deployment = await run.deploy();
    const pool = run.load(1);
    // The writer's first update adds its line; every later one is an edit.
    await pool.open([
      ...editors(deployment, DOCUMENT, 1, { prefix: 'writer', group: 'writer', record: false }),
      ...editors(deployment, WARM_UP_DOCUMENT, 1, { prefix: 'warm-up', group: 'warm-up', record: false }),
    ]);
    const figures: Record<string, number | null> = { lookupSmall: null, lookupLarge: null };
    const history = run.kind === 'concord' ? new HistoryClient(deployment) : undefined;
    const versions = await history?.available();
    if (history && !versions) run.unavailable('Concord has no `GET /api/documents/:kind/:id/versions/:seq` route yet (the history issue)', ['lookupSmall', 'lookupLarge']);
    let updates = 1;
    for (const [key, size] of [['lookupSmall', small], ['lookupLarge', large]] as const) {
      updates += await writeUntil(run, pool, size - updates);
      if (!history || !versions) continue;
      await history.settled();
      const latencies = await history.lookups(updates, lookups);
      figures[key] = latencies.p95;
      run.note(`${size.toLocaleString('en')} updates: lookup p50 ${fixed(latencies.p50, 1)} ms, p95 ${fixed(latencies.p95, 1)} ms, max ${fixed(latencies.max, 1)} ms`);
    }
    if (run.kind === 'concord') run.note(await verifyStored(deployment, [DOCUMENT, WARM_UP_DOCUMENT], updates + 1));
    // Concord loads the document from PostgreSQL: restarted (nothing loaded, a profile of its own), warmed up on
    // another document first. Bare Hocuspocus would forget the document, so its writer stays.
    if (history) {
      await pool.close();
      await history.settled();
      await deployment.restart();
      await (await load(deployment, WARM_UP_DOCUMENT)).client.close();
    }
    const [loaded, applied] = [[] as number[], [] as number[]];
    for (let i = 0; i < loads; i++) {
      await history?.unloaded();
      const { client, startedAt } = await load(deployment, DOCUMENT);
      loaded.push(client.contentArrivedAt - startedAt);
      applied.push(now() - client.contentArrivedAt);
      await client.close();
    }
    run.note(
      `loads of the ${updates.toLocaleString('en')}-update document, from connecting to its content arriving: ${loaded.map((ms) => fixed(ms, 0)).join(', ')} ms ` +
        `(the client then took ${fixed(spread(applied).p50, 0)} ms to apply it)`,
    );
    return { ...figures, coldLoad: spread(loaded).p50 };
  },
};

async function load(deployment: Deployment, document: string): Promise<{ client: LightClient; startedAt: number }> {
  const startedAt = now();
  const client = await LightClient.connect({ url: deployment.server.wsUrl, document: `${TENANT}/quote/${document}`, token: await deployment.token('loader'), awareness: {} });
  return { client, startedAt };
}

/** Has the writer make `count` more edits at full speed; returns how many it made. */
async function writeUntil(run: RunContext, pool: LoadPool, count: number): Promise<number> {
  run.progress(`writing ${count.toLocaleString('en')} updates`);
  const startedAt = performance.now();
  await pool.start({ writer: { window: WINDOW, totalEdits: count } });
  await pool.finished(WAIT_MS);
  const [report] = await pool.stop(0);
  run.note(`${report!.edits.toLocaleString('en')} updates written in ${fixed((performance.now() - startedAt) / 1000, 1)} s`);
  return report!.edits;
}

/** Concord's versions route and the metrics that say when checkpoints and unloading are done. */
class HistoryClient {
  private readonly deployment: Deployment;
  private readonly admin: Promise<string>;

  constructor(deployment: Deployment) {
    this.deployment = deployment;
    this.admin = deployment.token('admin', 'admin');
  }

  /** Waits until no checkpoint is being written: lookups are measured on the history as it settles. */
  async settled(): Promise<void> {
    await this.until('checkpoints written', (metrics) => metrics.get('concord_checkpoints_under_way') === 0);
  }

  async unloaded(): Promise<void> {
    await this.until('the document unloaded', (metrics) => metrics.get('concord_loaded_documents') === 0);
  }

  /** Whether the server has the versions route (the document's first version exists by now). */
  async available(): Promise<boolean> {
    const { status, body } = await this.version(1);
    return !(status === 404 && body.error?.message.startsWith('no route'));
  }

  /** Times `count` lookups of random versions 1..`updates` (after a few unmeasured ones). */
  async lookups(updates: number, count: number) {
    const times = [];
    for (let i = -3; i < count; i++) {
      const seq = 1 + Math.floor(Math.random() * updates);
      const startedAt = now();
      const { status, body } = await this.version(seq);
      const elapsed = now() - startedAt;
      if (status !== 200) throw new Error(`versions/${seq} answered ${status}: ${JSON.stringify(body).slice(0, 300)}`);
      if (body.version !== undefined && body.version !== seq) throw new Error(`versions/${seq} answered version ${body.version}`);
      if (i >= 0) times.push(elapsed);
    }
    return spread(times);
  }

  private async version(seq: number): Promise<{ status: number; body: { version?: number; error?: { code: string; message: string } } }> {
    const response = await this.deployment.server.get(`/api/documents/quote/${DOCUMENT}/versions/${seq}`, await this.admin);
    return { status: response.status, body: await response.json() };
  }

  private async until(what: string, done: (metrics: Map<string, number>) => boolean): Promise<void> {
    const deadline = performance.now() + WAIT_MS;
    while (!done(await this.deployment.server.metrics())) {
      if (performance.now() > deadline) throw new Error(`${what}: still waiting after ${WAIT_MS / 1000} s`);
      await sleep(100);
    }
  }
}
