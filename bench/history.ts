/**
 * History at scale: how long the server takes to answer any version of a
 * quote with 10,000 and with 100,000 updates (bars: 10 ms and 50 ms), and to
 * load the 100,000-update quote cold (bar: 200 ms).
 *
 *  - The logs are written straight into document_updates (through the same
 *    SQL the server uses), as three users' edits of a quote: half of them a
 *    line's quantity or price, a third keystrokes in the notes (typing runs
 *    at a caret, backspaces, now and then a paragraph cut), the rest header
 *    fields and lines added or removed. They have no checkpoint at first, like
 *    an import or a document written by an older server.
 *  - Version reads, GET /versions/:seq at random seqs; the figure is the
 *    server's own time (its Server-Timing header), the HTTP round trip beside
 *    it. Two server processes on the same database: one reading every version
 *    from checkpoint and tail (HISTORY_REPLICAS=0), one from the history
 *    replica it builds after a document's first read (the default). Some reads
 *    are checked against an independent replay of the log in this process.
 *  - Cold load: a provider opening the document when no instance holds it,
 *    until synced; the server's concord_document_load_seconds beside it.
 *
 *   node bench/history.ts      # BENCH_DATABASE_URL: where to create the database (default: local concord role)
 */
import { availableParallelism, loadavg } from 'node:os';
import * as Y from 'yjs';
import type { Database } from '../src/db/database.ts';
import { appendUpdates, type NewUpdate } from '../src/db/updates.ts';
import { parseDocumentName } from '../src/documents/name.ts';
import { renderDocument } from '../src/documents/service.ts';
import { connect, synced, waitFor } from '../test/support/clients.ts';
import { createStorage } from '../test/support/database.ts';
import { addLine, api } from '../test/support/documents.ts';
import { loggedUpdates, openTestDatabase, rowsOf } from '../test/support/inspect.ts';
import { ServerProcess } from '../test/support/server.ts';
import { token } from '../test/support/tokens.ts';
import { fixed, percentile, runAgainst, stealMeter } from './support.ts';

const SIZES = [10_000, 100_000];
const READS = 200;
const CHECKED_READS = 5;
const COLD_LOADS = 10;
const INSERT_CHUNK = 5_000;
const RUN_TIMEOUT_MS = 600_000;
const TENANT = 'bench';
const USERS = ['ana', 'ben', 'cem'];
const adminUrl = process.env.BENCH_DATABASE_URL || 'postgres://concord:concord@127.0.0.1:5432/postgres';

setTimeout(() => {
  console.error(`bench: still running after ${RUN_TIMEOUT_MS / 1000} s; giving up`);
  process.exit(1);
}, RUN_TIMEOUT_MS).unref();

console.log(`load average (1 min) at start: ${fixed(loadavg()[0]!, 2)} on ${availableParallelism()} CPUs`);

const storage = await createStorage('postgres', adminUrl);
const server = new ServerProcess(storage.env);
const fromLog = new ServerProcess({ ...storage.env, HISTORY_REPLICAS: '0' });
await runAgainst([server, fromLog], storage, async () => {
  await server.start();
  await fromLog.start();
  const db = await openTestDatabase(storage);
  try {
    await versionReads(db);
    await fromLog.stop();
    await coldLoads();
  } finally {
    await db.close();
  }
});

async function versionReads(db: Database): Promise<void> {
  const admin = await token({ tenant: TENANT, sub: 'bench-admin', role: 'admin' });
  console.log(`\nversion reads at random seqs, server time (Server-Timing) in ms, CHECKPOINT_EVERY=500, PostgreSQL (${new URL(adminUrl).host})`);
  console.log('| updates | checkpoint bytes | first read, checkpoints filled | from | p50 | p95 | p99 | max | HTTP p50 | CPU steal |');
  console.log('|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|');
  for (const size of SIZES) {
    const id = `q${size}`;
    await writeLog(db, `${TENANT}/quote/${id}`, size);
    const first = await readVersion(fromLog, admin, id, size);
    const checkpointBytes = (await rowsOf<{ bytes: number }>(db, TENANT, 'SELECT octet_length(state) AS bytes FROM document_checkpoints WHERE name = $1 ORDER BY seq DESC LIMIT 1', [`${TENANT}/quote/${id}`]))[0]?.bytes;
    // The replica is built in the background after the first read; wait until reads come from it.
    const buildStarted = performance.now();
    await waitFor('the history replica', async () => (await readVersion(server, admin, id, size)).from === 'replica', 120_000);
    const builtIn = performance.now() - buildStarted;
    for (const [target, from] of [[fromLog, 'checkpoint + tail'], [server, 'replica']] as const) {
      const steal = stealMeter();
      const serverTimes: number[] = [];
      const roundTrips: number[] = [];
      for (let read = 0; read < READS; read++) {
        const timing = await readVersion(target, admin, id, 1 + Math.floor(Math.random() * size));
        serverTimes.push(timing.server);
        roundTrips.push(timing.roundTrip);
      }
      await checkAgainstReplay(db, target, admin, id, size);
      const firstRead = from === 'replica' ? `(replica built in ${fixed(builtIn / 1000, 1)} s)` : fixed(first.roundTrip, 0);
      console.log(
        `| ${size.toLocaleString('en')} | ${checkpointBytes?.toLocaleString('en')} | ${firstRead} | ${from} | ${fixed(percentile(serverTimes, 0.5), 2)} | ${fixed(percentile(serverTimes, 0.95), 2)} | ${fixed(percentile(serverTimes, 0.99), 2)} | ${fixed(Math.max(...serverTimes), 2)} | ${fixed(percentile(roundTrips, 0.5), 2)} | ${fixed((steal() ?? NaN) * 100, 1)}% |`,
      );
    }
  }
  console.log(`(each size and way: ${READS} reads; ${CHECKED_READS} more checked against a replay of the log in this process)`);
  const memory = await server.metrics();
  const mib = (series: string) => fixed((memory.get(series) ?? NaN) / 2 ** 20, 0);
  console.log(`memory of the server holding both replicas: heap used ${mib('concord_nodejs_heap_size_used_bytes')} MiB, resident ${mib('concord_process_resident_memory_bytes')} MiB`);
}

async function coldLoads(): Promise<void> {
  const largest = `${TENANT}/quote/q${SIZES.at(-1)}`;
  console.log(`\ncold load of the ${SIZES.at(-1)!.toLocaleString('en')}-update quote: a provider opening it when it is not loaded, until synced`);
  console.log('| load | provider synced ms | server load ms (concord_document_load_seconds) |');
  console.log('|---|---:|---:|');
  const firstLoad = await coldLoad(server, largest);
  console.log(`| first ever (its tables are rebuilt from the document) | ${fixed(firstLoad.synced, 1)} | ${fixed(firstLoad.server, 1)} |`);
  const steal = stealMeter();
  const loads = [];
  for (let load = 0; load < COLD_LOADS; load++) loads.push(await coldLoad(server, largest));
  const median = (values: number[]) => percentile(values, 0.5);
  console.log(`| median of ${COLD_LOADS} | ${fixed(median(loads.map((l) => l.synced)), 1)} | ${fixed(median(loads.map((l) => l.server)), 1)} |`);
  console.log(`| slowest of ${COLD_LOADS} | ${fixed(Math.max(...loads.map((l) => l.synced)), 1)} | ${fixed(Math.max(...loads.map((l) => l.server)), 1)} |`);
  await server.stop();
  await server.start();
  const fresh = await coldLoad(server, largest);
  console.log(`| in a freshly started server process | ${fixed(fresh.synced, 1)} | ${fixed(fresh.server, 1)} |`);
  console.log(`(CPU steal during the cold loads: ${fixed((steal() ?? NaN) * 100, 1)}%)`);
}

/** A deterministic pseudo-random sequence (mulberry32), so every run edits the same way. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * Three users' replicas of one quote, each edit one transaction applied to the
 * others as the server would relay it; every update goes into the log with its
 * author, 100 ms apart, ending now.
 */
async function writeLog(db: Database, name: string, count: number): Promise<void> {
  const document = parseDocumentName(name);
  const next = random(count);
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
      doc.getMap('quote').set(next() < 0.5 ? 'discountPct' : 'status', next() < 0.5 ? Math.floor(next() * 20) : ['draft', 'sent'][Math.floor(next() * 2)]!);
    } else if (roll < 0.999) {
      addLine(doc, { id: `l${lineIds++}`, sku: 'NEW', quantity: 1, unitPrice: 1 });
    } else if (lines.length > 1) {
      lines.delete(Math.floor(next() * lines.length), 1);
    }
  }
  for (let from = 0; from < count; from += INSERT_CHUNK) {
    await db.transaction(TENANT, (sql) => appendUpdates(sql, updates.slice(from, Math.min(count, from + INSERT_CHUNK))));
  }
}

async function readVersion(target: ServerProcess, admin: string, id: string, seq: number): Promise<{ server: number; roundTrip: number; from: string }> {
  const startedAt = performance.now();
  const response = await fetch(`${target.httpUrl}/api/documents/quote/${id}/versions/${seq}`, { headers: { authorization: `Bearer ${admin}` } });
  await response.arrayBuffer();
  const roundTrip = performance.now() - startedAt;
  if (!response.ok) throw new Error(`version ${seq} of ${id}: ${response.status}`);
  const timing = /version;dur=([\d.]+);desc="(\w+)"/.exec(response.headers.get('server-timing') ?? '');
  if (!timing) throw new Error('no Server-Timing header');
  return { server: Number(timing[1]), roundTrip, from: timing[2]! };
}

/** Throws unless versions at random seqs equal the log replayed from its start in this process. */
async function checkAgainstReplay(db: Database, target: ServerProcess, admin: string, id: string, size: number): Promise<void> {
  const name = `${TENANT}/quote/${id}`;
  const log = await loggedUpdates(db, TENANT, name);
  const seqs = Array.from({ length: CHECKED_READS }, () => 1 + Math.floor(Math.random() * size)).sort((a, b) => a - b);
  const doc = new Y.Doc();
  let applied = 0;
  for (const seq of seqs) {
    for (; applied < seq; applied++) Y.applyUpdate(doc, log[applied]!.update);
    const { body } = await api(target.httpUrl, admin, 'GET', `/api/documents/quote/${id}/versions/${seq}`);
    if (JSON.stringify(body.content) !== JSON.stringify(renderDocument(parseDocumentName(name), doc))) throw new Error(`${name}: version ${seq} differs from the replayed log`);
  }
}

/** Opens the document with a provider once no instance has it loaded; returns the time to synced and the server's load time. */
async function coldLoad(target: ServerProcess, name: string): Promise<{ synced: number; server: number }> {
  await waitFor('the document is unloaded', async () => (await target.metrics()).get('concord_loaded_documents') === 0, 30_000);
  const before = await target.metrics();
  const startedAt = performance.now();
  const client = connect(target.wsUrl, name, await token({ tenant: TENANT, sub: 'reader', role: 'viewer' }));
  try {
    await synced(client, 30_000);
    const syncedIn = performance.now() - startedAt;
    const after = await target.metrics();
    const loadSeconds = (after.get('concord_document_load_seconds_sum') ?? 0) - (before.get('concord_document_load_seconds_sum') ?? 0);
    return { synced: syncedIn, server: loadSeconds * 1000 };
  } finally {
    client.provider.destroy();
  }
}
