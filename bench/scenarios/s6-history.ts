import * as Y from 'yjs';
import type { Database } from '../../src/db/database.ts';
import { appendUpdates, type NewUpdate } from '../../src/db/updates.ts';
import { parseDocumentName } from '../../src/documents/kinds.ts';
import { renderDocument } from '../../src/documents/service.ts';
import { waitFor } from '../../test/support/clients.ts';
import { addLine, api } from '../../test/support/documents.ts';
import { seeded } from '../../test/support/random-edits.ts';
import { loggedUpdates, openTestDatabase, rowsOf } from '../../test/support/inspect.ts';
import { now } from '../harness/clock.ts';
import { TENANT, type Deployment } from '../harness/deployment.ts';
import { LightClient } from '../harness/light-client.ts';
import type { RunContext, Scenario } from '../harness/scenario.ts';
import { fixed, spread } from '../harness/stats.ts';

const USERS = ['ana', 'ben', 'cem'];
const INSERT_CHUNK = 5_000;
// Versions checked against a replay of the whole log in the bench process, per size and way of reading.
const CHECKED_READS = 5;
const REPLICA_WAIT_MS = 180_000;

/** Admins reading history: any past version of a long-edited quote, and opening such a quote. */
export const history: Scenario = {
  id: 'S6',
  title: 'history',
  description:
    'The logs of a quote with 10,000 updates and one with 100,000 are written straight into `document_updates` (through the server\'s own SQL), as three users edit it: ' +
    'half the updates a line\'s quantity or price, a third keystrokes in the notes (typing runs at a caret, backspaces, now and then a paragraph cut), the rest header fields and lines added or removed; no checkpoint at first, like an import. ' +
    '`GET /api/documents/quote/:id/versions/:seq` (admin) at 200 random seqs, p95 of the HTTP round trip: from checkpoint and tail (a server with `HISTORY_REPLICAS=0`), and from the history replica the default server builds after a document\'s first read; some versions are checked against a replay of the log. ' +
    'Cold load: a client opening the 100,000-update quote when it is not loaded (median of 10), until its content arrives (the stored content is sent ahead while the server integrates it), and until the server holds it (its own load time, `concord_document_load_seconds`: the client\'s writes wait until then). Bare Hocuspocus keeps no history; its load is the sync of the same content held in memory.',
  rows: [
    { key: 'smallReplica', label: 'version at 10k updates, from the replica, p95', unit: 'ms', digits: 1, bar: { max: 10 }, bareless: 'no history' },
    { key: 'smallLog', label: 'version at 10k updates, from checkpoint and tail, p95', unit: 'ms', digits: 1, bar: { max: 10 }, bareless: 'no history' },
    { key: 'largeReplica', label: 'version at 100k updates, from the replica, p95', unit: 'ms', digits: 1, bar: { max: 50 }, bareless: 'no history' },
    { key: 'largeLog', label: 'version at 100k updates, from checkpoint and tail, p95', unit: 'ms', digits: 1, bar: { max: 100 }, bareless: 'no history' },
    { key: 'coldLoad', label: 'cold load of the 100k-update quote, median', unit: 'ms', digits: 1, bar: { max: 150 } },
    { key: 'coldLoadServer', label: 'cold load: until the server holds it (writes wait until then), median', unit: 'ms', digits: 1, bareless: 'held in memory' },
  ],
  async measure(run) {
    const [sizes, reads, loads] = run.smoke ? [[1_000, 3_000], 10, 2] : [[10_000, 100_000], 200, 10];
    const deployment = await run.deploy();
    const largest = `s6-${sizes.at(-1)}`;
    const logOf = (size: number) => quoteLog(`${TENANT}/quote/s6-${size}`, size);
    if (run.kind === 'bare') {
      const coldLoad = await loadsFromMemory(run, deployment, largest, logOf(sizes.at(-1)!), loads);
      return { smallReplica: null, smallLog: null, largeReplica: null, largeLog: null, coldLoad, coldLoadServer: null };
    }

    const db = await openTestDatabase(deployment.storage!);
    try {
      for (const size of sizes) await insertLog(db, logOf(size));
      const figures: Record<string, number> = {};
      for (const way of ['log', 'replica'] as const) {
        await deployment.restart(`versions from ${way === 'log' ? 'checkpoint and tail' : 'the replica'}`, way === 'log' ? { HISTORY_REPLICAS: '0' } : {});
        const admin = await deployment.token('admin', 'admin');
        for (const [index, size] of sizes.entries()) {
          const id = `s6-${size}`;
          const first = await readVersion(deployment, admin, id, size);
          if (way === 'replica') {
            const startedAt = performance.now();
            await waitFor('the history replica', async () => (await readVersion(deployment, admin, id, size)).from === 'replica', REPLICA_WAIT_MS);
            run.note(`${size.toLocaleString('en')} updates: the replica was built ${fixed((performance.now() - startedAt) / 1000, 1)} s after the first read`);
          } else {
            run.note(`${size.toLocaleString('en')} updates: the first read, which writes the checkpoints the log lacks, took ${fixed(first.roundTrip, 0)} ms`);
          }
          const timings = await readVersions(deployment, admin, id, size, reads, way);
          await checkAgainstReplay(db, deployment, admin, id, size);
          figures[`${index === 0 ? 'small' : 'large'}${way === 'log' ? 'Log' : 'Replica'}`] = timings.roundTrip.p95;
          run.note(
            `${size.toLocaleString('en')} updates from ${way === 'log' ? `checkpoint and tail (${timings.exact} of ${reads} from the exact state, the others from the compact state)` : 'the replica'}: round trip p50 ${fixed(timings.roundTrip.p50, 1)}, p99 ${fixed(timings.roundTrip.p99, 1)}, max ${fixed(timings.roundTrip.max, 1)} ms; ` +
              `server time (Server-Timing) p50 ${fixed(timings.server.p50, 1)}, p95 ${fixed(timings.server.p95, 1)} ms`,
          );
        }
      }
      const metrics = await deployment.server.metrics();
      const checkpoint = await rowsOf<{ bytes: number }>(db, TENANT, 'SELECT octet_length(state) AS bytes FROM document_checkpoints WHERE name = $1 ORDER BY seq DESC LIMIT 1', [`${TENANT}/quote/${largest}`]);
      run.note(
        `server holding both replicas: heap used ${fixed((metrics.get('concord_nodejs_heap_size_used_bytes') ?? NaN) / 2 ** 20, 0)} MiB, RSS ${fixed(deployment.usage().rssBytes / 2 ** 20, 0)} MiB; ` +
          `the ${sizes.at(-1)!.toLocaleString('en')}-update quote's latest checkpoint is ${fixed((checkpoint[0]?.bytes ?? NaN) / 1024, 0)} KiB`,
      );
      Object.assign(figures, await coldLoads(run, deployment, largest, loads));
      return figures;
    } finally {
      await db.close();
    }
  },
};

/**
 * Opens `id` when no server has it loaded: the first load ever (its tables
 * are rebuilt), `count` more (the figures: until the content arrived, and
 * until the server held it), one in a fresh process.
 */
async function coldLoads(run: RunContext, deployment: Deployment, id: string, count: number): Promise<{ coldLoad: number; coldLoadServer: number }> {
  await deployment.restart('cold loads');
  const coldLoad = async () => {
    await waitFor('the document unloaded', async () => (await deployment.server.metrics()).get('concord_loaded_documents') === 0, 30_000);
    const before = await deployment.server.metrics();
    const { client, arrivedIn } = await load(deployment, id);
    await client.close();
    const after = await deployment.server.metrics();
    const loadSeconds = (after.get('concord_document_load_seconds_sum') ?? 0) - (before.get('concord_document_load_seconds_sum') ?? 0);
    return { arrivedIn, serverMs: loadSeconds * 1000 };
  };
  const first = await coldLoad();
  const timings = [];
  for (let i = 0; i < count; i++) timings.push(await coldLoad());
  await deployment.restart('a cold load in a fresh process');
  const fresh = await coldLoad();
  const [arrived, server] = [spread(timings.map((t) => t.arrivedIn)), spread(timings.map((t) => t.serverMs))];
  run.note(
    `cold loads of ${id} until its content arrived: the first ever (tables rebuilt) ${fixed(first.arrivedIn, 0)} ms; median ${fixed(arrived.p50, 0)}, slowest ${fixed(arrived.max, 0)} ms; ` +
      `in a freshly started process ${fixed(fresh.arrivedIn, 0)} ms. The server's own load time (concord_document_load_seconds): median ${fixed(server.p50, 0)}, slowest ${fixed(server.max, 0)} ms`,
  );
  return { coldLoad: arrived.p50, coldLoadServer: server.p50 };
}

/** Bare Hocuspocus: a client holds the document's final state in the server's memory; others open it `count` times. */
async function loadsFromMemory(run: RunContext, deployment: Deployment, id: string, log: NewUpdate[], count: number): Promise<number> {
  const { client: holder } = await load(deployment, id);
  try {
    const state = new Y.Doc();
    for (const { update } of log) Y.applyUpdate(state, update);
    holder.edit((doc) => Y.applyUpdate(doc, Y.encodeStateAsUpdate(state)));
    await holder.acknowledged();
    const timings = [];
    for (let i = 0; i < count; i++) {
      const { client, arrivedIn } = await load(deployment, id);
      timings.push(arrivedIn);
      await client.close();
    }
    run.note(`loads of the same content from memory: ${timings.map((ms) => fixed(ms, 0)).join(', ')} ms`);
    return spread(timings).p50;
  } finally {
    await holder.close();
  }
}

/** Connects a client to `id`; how long until the document's content arrived (before the client applies it). */
async function load(deployment: Deployment, id: string): Promise<{ client: LightClient; arrivedIn: number }> {
  const startedAt = now();
  const client = await LightClient.connect({ url: deployment.server.wsUrl, document: `${TENANT}/quote/${id}`, token: await deployment.token('reader', 'viewer'), awareness: {} });
  return { client, arrivedIn: client.contentArrivedAt - startedAt };
}

/**
 * The log of `count` updates of quote `name`: three users' replicas, each
 * edit one transaction applied to the others as the server would relay it,
 * 100 ms apart, ending now.
 */
function quoteLog(name: string, count: number): NewUpdate[] {
  const document = parseDocumentName(name);
  const next = seeded(count);
  const replicas = USERS.map(() => new Y.Doc());
  const carets = USERS.map(() => 0);
  const updates: NewUpdate[] = [];
  const start = Date.now() - count * 100;
  replicas.forEach((replica, index) =>
    replica.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === 'relay') return;
      updates.push({ document, update, userId: USERS[index]!, origin: 'client', receivedAt: new Date(start + updates.length * 100) });
      for (const other of replicas) if (other !== replica) Y.applyUpdate(other, update, 'relay');
    }),
  );
  let lineIds = 0;
  replicas[0]!.transact(() => {
    replicas[0]!.getMap('quote').set('title', 'History bench');
    for (let line = 0; line < 40; line++) addLine(replicas[0]!, { id: `l${lineIds++}`, sku: `SKU-${line}`, quantity: 1, unitPrice: 9.99 });
  });
  while (updates.length < count) {
    const user = Math.floor(next() * replicas.length);
    const doc = replicas[user]!;
    const lines = doc.getArray<Y.Map<unknown>>('lines');
    const notes = doc.getText('notes');
    const caret = Math.min(carets[user]!, notes.length);
    const roll = next();
    if (roll < 0.5 && lines.length > 0) {
      lines.get(Math.floor(next() * lines.length)).set(next() < 0.7 ? 'quantity' : 'unitPrice', Math.round(next() * 1000) / 10);
    } else if (roll < 0.8) {
      // Typing at the caret, which now and then moves elsewhere.
      const at = next() < 0.02 ? Math.floor(next() * (notes.length + 1)) : caret;
      notes.insert(at, 'abcdefghij '[Math.floor(next() * 11)]!);
      carets[user] = at + 1;
    } else if (roll < 0.83 && caret > 0) {
      notes.delete(caret - 1, 1);
      carets[user] = caret - 1;
    } else if (roll < 0.84 && notes.length > 2_000) {
      notes.delete(Math.floor(next() * (notes.length - 500)), 500);
    } else if (roll < 0.997) {
      // A value the field takes (the rules refuse a string discount or a numeric status).
      if (next() < 0.5) doc.getMap('quote').set('discountPct', Math.floor(next() * 20));
      else doc.getMap('quote').set('status', ['draft', 'sent'][Math.floor(next() * 2)]!);
    } else if (roll < 0.999) {
      addLine(doc, { id: `l${lineIds++}`, sku: 'NEW', quantity: 1, unitPrice: 1 });
    } else if (lines.length > 1) {
      lines.delete(Math.floor(next() * lines.length), 1);
    }
  }
  return updates.slice(0, count);
}

async function insertLog(db: Database, updates: NewUpdate[]): Promise<void> {
  for (let from = 0; from < updates.length; from += INSERT_CHUNK) {
    await db.transaction(TENANT, (sql) => appendUpdates(sql, updates.slice(from, from + INSERT_CHUNK)));
  }
}

async function readVersion(deployment: Deployment, admin: string, id: string, seq: number): Promise<{ server: number; roundTrip: number; from: string }> {
  const startedAt = now();
  const response = await deployment.server.get(`/api/documents/quote/${id}/versions/${seq}`, admin);
  await response.arrayBuffer();
  const roundTrip = now() - startedAt;
  if (!response.ok) throw new Error(`version ${seq} of ${id}: ${response.status}`);
  const timing = /version;dur=([\d.]+);desc="(\w+)"/.exec(response.headers.get('server-timing') ?? '');
  if (!timing) throw new Error('no Server-Timing header on a version read');
  return { server: Number(timing[1]), roundTrip, from: timing[2]! };
}

/** `count` reads of random versions, every one from the replica or every one from the log (a checkpoint's compact state or its exact state, and the tail); how many from the exact state. */
async function readVersions(deployment: Deployment, admin: string, id: string, size: number, count: number, way: 'log' | 'replica') {
  const [server, roundTrip] = [[] as number[], [] as number[]];
  let exact = 0;
  for (let read = 0; read < count; read++) {
    const timing = await readVersion(deployment, admin, id, 1 + Math.floor(Math.random() * size));
    if ((timing.from === 'replica') !== (way === 'replica')) throw new Error(`a version of ${id} was read from ${timing.from}, not from the ${way}`);
    if (timing.from === 'log') exact += 1;
    server.push(timing.server);
    roundTrip.push(timing.roundTrip);
  }
  return { server: spread(server), roundTrip: spread(roundTrip), exact };
}

/** Throws unless versions at random seqs equal the log replayed from its start in this process. */
async function checkAgainstReplay(db: Database, deployment: Deployment, admin: string, id: string, size: number): Promise<void> {
  const name = `${TENANT}/quote/${id}`;
  const log = await loggedUpdates(db, TENANT, name);
  const seqs = Array.from({ length: CHECKED_READS }, () => 1 + Math.floor(Math.random() * size)).sort((a, b) => a - b);
  const doc = new Y.Doc();
  let applied = 0;
  for (const seq of seqs) {
    for (; applied < seq; applied++) Y.applyUpdate(doc, log[applied]!.update);
    const { body } = await api(deployment.server.httpUrl, admin, 'GET', `/api/documents/quote/${id}/versions/${seq}`);
    if (JSON.stringify(body.content) !== JSON.stringify(renderDocument(parseDocumentName(name), doc))) throw new Error(`${name}: version ${seq} differs from the replayed log`);
  }
}
