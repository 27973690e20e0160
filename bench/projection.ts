/**
 * The cost of what every update carries besides its log row (audit rows in
 * `field_changes`, the `quotes`/`quote_lines` rows) in a quote of 10 lines and
 * one of 2,000: it should not grow with the quote.
 *
 *  (a) In process: the tracker reading each transaction into field changes and
 *      rows, for single-field line edits and keystrokes into `notes`.
 *  (b) End to end: one provider editing a line's quantity against a real server
 *      process on PostgreSQL, one edit outstanding at a time and pipelined.
 *      Afterwards the tables and `field_changes` must show every edit, or the
 *      bench fails.
 *
 *   node bench/projection.ts      # BENCH_DATABASE_URL: where to create the database (default: local concord role)
 */
import { availableParallelism, loadavg } from 'node:os';
import type { HocuspocusProvider } from '@hocuspocus/provider';
import * as Y from 'yjs';
import type { Database } from '../src/db/database.ts';
import { kindOf } from '../src/documents/kinds.ts';
import { DocumentTracker } from '../src/projection/tracker.ts';
import { connect, synced } from '../test/support/clients.ts';
import { createStorage } from '../test/support/database.ts';
import { addLine } from '../test/support/documents.ts';
import { openTestDatabase, rowsOf } from '../test/support/inspect.ts';
import { ServerProcess } from '../test/support/server.ts';
import { token } from '../test/support/tokens.ts';
import { acknowledged, fixed, percentile, stealMeter } from './support.ts';

const SIZES = [10, 2_000];
const TRACKER_EDITS = 20_000;
const TRACKER_KEYSTROKES = 2_000;
const TRACKER_ROUNDS = 3;
const ONE_AT_A_TIME_EDITS = 1_000;
const PIPELINED_EDITS = 5_000;
// Unmeasured edits first, so that JIT warm-up and opening the pg pool's connections stay out of the figures.
const WARMUP_EDITS = 1_000;
const RUN_TIMEOUT_MS = 170_000;
const TENANT = 'bench';
const adminUrl = process.env.BENCH_DATABASE_URL || 'postgres://concord:concord@127.0.0.1:5432/postgres';
const quote = kindOf('quote');

setTimeout(() => {
  console.error(`bench: still running after ${RUN_TIMEOUT_MS / 1000} s; giving up`);
  process.exit(1);
}, RUN_TIMEOUT_MS).unref();

// Every edit sets a quantity no line has had before, so each one is a real change and must leave exactly one audit row.
let nextQuantity = 2;

console.log(`load average (1 min) at start: ${fixed(loadavg()[0]!, 2)} on ${availableParallelism()} CPUs\n`);

// Whichever size ran first would also pay for JIT compilation: one unmeasured run first. Other
// processes come and go on a shared machine: the sizes take turns, and each figure is its median over the rounds.
trackerCost(SIZES[0]!);
const trackerSteal = stealMeter();
const rounds = Array.from({ length: TRACKER_ROUNDS }, () => SIZES.map(trackerCost));
const inProcess = SIZES.map((_, size) => medians(rounds.map((round) => round[size]!)));
console.log(`(a) in process: DocumentTracker.observe per transaction, µs (median of ${TRACKER_ROUNDS} rounds; CPU steal ${fixed((trackerSteal() ?? NaN) * 100, 1)}%)`);
console.log('| lines | line edit mean | line edit p99 | keystroke mean | keystroke p99 | whole transaction mean (Yjs + tracker) |');
console.log('|---:|---:|---:|---:|---:|---:|');
SIZES.forEach((lineCount, size) => console.log(`| ${lineCount} | ${Object.values(inProcess[size]!).map((value) => fixed(value, 1)).join(' | ')} |`));
console.log(growth(inProcess));

const storage = await createStorage('postgres', adminUrl);
const server = new ServerProcess(storage.env);
let db: Database | undefined;
let failed = false;
try {
  await server.start();
  db = await openTestDatabase(storage);
  console.log(`\n(b) end to end: a provider editing one line field, a server process, PostgreSQL (${new URL(adminUrl).host})`);
  console.log('| lines | ack p50 ms | ack p99 ms | one at a time: acked updates/s | pipelined: acked updates/s | pipelined: mean commit batch | CPU steal |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  const endToEndRows: Array<Record<string, number>> = [];
  for (const lineCount of SIZES) {
    const steal = stealMeter();
    const r = await endToEnd(server, db, lineCount);
    const row = { 'ack p50': percentile(r.latenciesMs, 0.5), 'ack p99': percentile(r.latenciesMs, 0.99), 'one-at-a-time rate': r.oneAtATimeRate, 'pipelined rate': r.pipelinedRate };
    console.log(`| ${lineCount} | ${fixed(row['ack p50'], 2)} | ${fixed(row['ack p99'], 2)} | ${fixed(row['one-at-a-time rate'], 0)} | ${fixed(row['pipelined rate'], 0)} | ${fixed(r.meanBatch, 1)} | ${fixed((steal() ?? NaN) * 100, 1)}% |`);
    endToEndRows.push(row);
  }
  console.log(growth(endToEndRows));
  console.log('(pipelined, a commit writes each changed line row once: at most 10 in the 10-line quote, up to one per edit in the 2,000-line one)');
  console.log('\nverified: the quotes and quote_lines rows show the last edit and the totals, field_changes holds one row per edit');
} catch (error) {
  failed = true;
  console.error(`\nFAILED: ${(error as Error).message}`);
  const problems = server.logs.split('\n').filter((line) => /"level":[4-6]0/.test(line) || (line && !line.startsWith('{')));
  for (const line of problems.slice(0, 10)) console.error(`server said: ${line.slice(0, 400)}`);
} finally {
  await db?.close();
  await server.stop();
  await storage.drop();
}
process.exit(failed ? 1 : 0);

/** A quote of `lineCount` lines as a client builds it, in one transaction; returns the lines to edit. */
function seedQuote(doc: Y.Doc, lineCount: number): Y.Map<unknown>[] {
  doc.transact(() => {
    doc.getMap('quote').set('title', `Bench quote of ${lineCount} lines`);
    doc.getMap('quote').set('taxPct', 19);
    for (let i = 0; i < lineCount; i++) {
      addLine(doc, { id: `l${i}`, sku: `SKU-${i}`, description: `Item ${i}`, quantity: 1, unitPrice: 9.99, discountPct: 5 });
    }
  });
  return doc.getArray<Y.Map<unknown>>('lines').toArray();
}

function editRandomLine(lines: Y.Map<unknown>[]): { line: Y.Map<unknown>; quantity: number } {
  const line = lines[Math.floor(Math.random() * lines.length)]!;
  const quantity = nextQuantity++;
  line.set('quantity', quantity);
  return { line, quantity };
}

function trackerCost(lineCount: number): Record<string, number> {
  const doc = new Y.Doc();
  const tracker = new DocumentTracker(quote, doc, 'bench');
  let observed: number[] = [];
  let fieldChanges = 0;
  // As the server's persistence extension does: read each transaction before its deleted content is collected.
  doc.on('afterTransaction', (transaction: Y.Transaction) => {
    const startedAt = performance.now();
    fieldChanges += tracker.observe(transaction).fieldChanges.length;
    observed.push((performance.now() - startedAt) * 1000);
  });
  const lines = seedQuote(doc, lineCount);
  for (let i = 0; i < WARMUP_EDITS; i++) editRandomLine(lines);

  observed = [];
  fieldChanges = 0;
  const startedAt = performance.now();
  for (let i = 0; i < TRACKER_EDITS; i++) editRandomLine(lines);
  const transactionUs = ((performance.now() - startedAt) * 1000) / TRACKER_EDITS;
  const editUs = observed;

  const notes = doc.getText('notes');
  for (let i = 0; i < WARMUP_EDITS; i++) notes.insert(notes.length, 'x');
  observed = [];
  for (let i = 0; i < TRACKER_KEYSTROKES; i++) notes.insert(notes.length, 'x');

  if (fieldChanges !== TRACKER_EDITS + WARMUP_EDITS + TRACKER_KEYSTROKES) {
    throw new Error(`the tracker saw ${fieldChanges} field changes in ${TRACKER_EDITS + WARMUP_EDITS + TRACKER_KEYSTROKES} single-field transactions`);
  }
  const keystrokeUs = observed;
  return { 'line edit': mean(editUs), 'line edit p99': percentile(editUs, 0.99), keystroke: mean(keystrokeUs), 'keystroke p99': percentile(keystrokeUs, 0.99), transaction: transactionUs };
}

async function endToEnd(server: ServerProcess, db: Database, lineCount: number): Promise<{ latenciesMs: number[]; oneAtATimeRate: number; pipelinedRate: number; meanBatch: number }> {
  const id = `q${lineCount}`;
  const name = `${TENANT}/quote/${id}`;
  const client = connect(server.wsUrl, name, await token({ tenant: TENANT, sub: 'bench-user', role: 'editor' }));
  const { provider, doc } = client;
  // A reconnect resets unsyncedChanges and resends, which would skew every number after it.
  let disconnected = '';
  provider.on('disconnect', ({ event }: { event: CloseEvent }) => (disconnected ||= `the provider was disconnected (${event.code} ${event.reason})`));
  try {
    await synced(client);
    const lines = seedQuote(doc, lineCount);
    let last = editRandomLine(lines);
    for (let i = 1; i < WARMUP_EDITS; i++) last = editRandomLine(lines);
    await acknowledged(provider);

    const latenciesMs: number[] = [];
    let startedAt = performance.now();
    for (let i = 0; i < ONE_AT_A_TIME_EDITS; i++) {
      const sentAt = performance.now();
      last = editRandomLine(lines);
      await acknowledged(provider);
      latenciesMs.push(performance.now() - sentAt);
    }
    const oneAtATimeRate = ONE_AT_A_TIME_EDITS / ((performance.now() - startedAt) / 1000);

    const before = await server.metrics();
    startedAt = performance.now();
    for (let i = 0; i < PIPELINED_EDITS; i++) last = editRandomLine(lines);
    await acknowledged(provider);
    const pipelinedRate = PIPELINED_EDITS / ((performance.now() - startedAt) / 1000);
    const after = await server.metrics();
    const delta = (series: string) => (after.get(series) ?? 0) - (before.get(series) ?? 0);

    if (disconnected) throw new Error(disconnected);
    if (after.get('concord_persistence_errors_total')) throw new Error(`the server counted ${after.get('concord_persistence_errors_total')} persistence error(s)`);
    await verify(db, doc, id, WARMUP_EDITS + ONE_AT_A_TIME_EDITS + PIPELINED_EDITS, lineCount, last);
    return { latenciesMs, oneAtATimeRate, pipelinedRate, meanBatch: delta('concord_commit_batch_updates_sum') / delta('concord_commit_batch_updates_count') };
  } finally {
    provider.destroy();
  }
}

/** Throws unless the tables match the client's acknowledged document and every edit left exactly one audit row. */
async function verify(db: Database, doc: Y.Doc, id: string, edits: number, lineCount: number, last: { line: Y.Map<unknown>; quantity: number }): Promise<void> {
  const name = `${TENANT}/quote/${id}`;
  // The seed is one update, then one update per edit.
  const version = 1 + edits;
  const expected = quote.headerRow(new DocumentTracker(quote, doc, id));
  const [row] = await rowsOf<{ version: number; line_count: number; subtotal: string; total: string }>(db, TENANT, 'SELECT version, line_count, subtotal, total FROM quotes WHERE id = $1', [id]);
  const got = row && { version: Number(row.version), line_count: row.line_count, subtotal: row.subtotal, total: row.total };
  const want = { version, line_count: lineCount, subtotal: expected.subtotal, total: expected.total };
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${name}: quotes row ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);

  const [line] = await rowsOf<{ quantity: string }>(db, TENANT, 'SELECT quantity FROM quote_lines WHERE quote_id = $1 AND id = $2', [id, last.line.get('id')]);
  if (Number(line?.quantity) !== last.quantity) throw new Error(`${name}: quote_lines has quantity ${line?.quantity} for the last edit's line, expected ${last.quantity}`);

  const [audit] = await rowsOf<{ rows: number; edits: number; seqs: number }>(
    db,
    TENANT,
    `SELECT count(*)::int AS rows,
            count(*) FILTER (WHERE entity = 'quote_line' AND field = 'quantity' AND action = 'update')::int AS edits,
            count(DISTINCT seq)::int AS seqs
       FROM field_changes WHERE name = $1 AND seq > 1`,
    [name],
  );
  const wantAudit = { rows: edits, edits, seqs: edits };
  if (JSON.stringify(audit) !== JSON.stringify(wantAudit)) throw new Error(`${name}: field_changes counts ${JSON.stringify(audit)}, expected ${JSON.stringify(wantAudit)}`);
}

/** Each figure at the largest size over the same figure at the smallest: about 1 when the cost is flat. */
function growth(rows: Array<Record<string, number>>): string {
  const ratios = Object.keys(rows[0]!).map((key) => `${key} ×${fixed(rows.at(-1)![key]! / rows[0]![key]!, 2)}`);
  return `${SIZES.at(-1)} lines / ${SIZES[0]} lines: ${ratios.join(', ')}`;
}

/** Per figure, the median of `rows`' values. */
function medians(rows: Array<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.keys(rows[0]!).map((key) => [key, percentile(rows.map((row) => row[key]!), 0.5)]));
}

function mean(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

