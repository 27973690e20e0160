/**
 * What one client sees of Concord's durable acknowledgements: the latency
 * from a local edit to its acknowledgement (sent only after the update is
 * committed) at a steady pace, and how many acknowledged updates per second
 * one client gets when it edits as fast as it can. Runs against the embedded
 * PGlite and against a real PostgreSQL (BENCH_DATABASE_URL).
 *
 *   npm run bench
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { HocuspocusProvider, type onUnsyncedChangesParameters } from '@hocuspocus/provider';
import * as Y from 'yjs';
import { createStorage, type TestStorage } from '../test/support/database.ts';
import { ServerProcess } from '../test/support/server.ts';
import { token } from '../test/support/tokens.ts';
import { acknowledged, fixed, percentile, stealMeter } from './support.ts';

const PACED_RATE = 200;
const PACED_SECONDS = 5;
const FULL_SPEED_EDITS = 5_000;
// Unmeasured edits first, so that JIT warm-up and opening the pg pool's connections stay out of the percentiles.
const WARMUP_EDITS = 200;
const SYNC_TIMEOUT_MS = 20_000;
const RUN_TIMEOUT_MS = 115_000;
const adminUrl = process.env.BENCH_DATABASE_URL || 'postgres://concord:concord@127.0.0.1:5432/postgres';

interface Result {
  backend: string;
  latenciesMs: number[];
  pacedRate: number;
  fullSpeedRate: number;
  meanBatch: number;
  notes: string[];
}

setTimeout(() => {
  console.error(`bench: still running after ${RUN_TIMEOUT_MS / 1000} s; giving up`);
  process.exit(1);
}, RUN_TIMEOUT_MS).unref();

const results: Result[] = [];
const skipped: string[] = [];

results.push(await runOn('pglite', await createStorage('pglite')));
let postgres: TestStorage | undefined;
try {
  postgres = await createStorage('postgres', adminUrl);
} catch (error) {
  skipped.push(`postgres: skipped, ${redact(adminUrl)} is not usable: ${(error as Error).message}`);
}
if (postgres) results.push(await runOn('postgres', postgres));

console.log('\n| backend | ack p50 ms | ack p99 ms | ack max ms | paced rate | full-speed acked updates/s | mean commit batch |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  const [p50, p99, max] = [0.5, 0.99, 1].map((q) => fixed(percentile(r.latenciesMs, q), 2));
  console.log(`| ${r.backend} | ${p50} | ${p99} | ${max} | ${fixed(r.pacedRate, 0)}/s | ${fixed(r.fullSpeedRate, 0)} | ${fixed(r.meanBatch, 1)} |`);
}
console.log();
for (const line of [...skipped, ...results.flatMap((r) => r.notes.map((note) => `${r.backend}: ${note}`))]) console.log(`- ${line}`);

async function runOn(backend: string, storage: TestStorage): Promise<Result> {
  const result: Result = { backend, latenciesMs: [], pacedRate: NaN, fullSpeedRate: NaN, meanBatch: NaN, notes: [] };
  const server = new ServerProcess(storage.env);
  let provider: HocuspocusProvider | undefined;
  const steal = stealMeter();
  try {
    await server.start();
    const document = new Y.Doc();
    provider = await connect(server.port, `bench/quote/${randomBytes(4).toString('hex')}`, document, result.notes);

    const quote = document.getMap('quote');
    for (let i = 0; i < WARMUP_EDITS; i++) document.transact(() => quote.set(`warmup-${i % 20}`, i));
    await acknowledged(provider);

    const paced = await pacedEdits(provider, (i) => document.transact(() => quote.set(`field-${i % 50}`, i)));
    result.latenciesMs = paced.latenciesMs;
    result.pacedRate = paced.rate;

    const text = document.getText('notes');
    const before = await server.metrics();
    const startedAt = performance.now();
    for (let i = 0; i < FULL_SPEED_EDITS; i++) document.transact(() => text.insert(text.length, 'x'));
    await acknowledged(provider);
    result.fullSpeedRate = FULL_SPEED_EDITS / ((performance.now() - startedAt) / 1000);

    const after = await server.metrics();
    const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    result.meanBatch = delta('concord_commit_batch_updates_sum') / delta('concord_commit_batch_updates_count');
    result.notes.push(
      `full speed: ${delta('concord_updates_persisted_total')}/${FULL_SPEED_EDITS} updates persisted ` +
        `(${delta('concord_updates_received_total')} received) in ${delta('concord_commit_batch_updates_count')} commits; ` +
        `persistence errors over the whole run: ${after.get('concord_persistence_errors_total') ?? 0}`,
    );
  } catch (error) {
    result.notes.push(`FAILED: ${(error as Error).message}`);
  } finally {
    provider?.destroy();
    await server.stop();
    await storage.drop().catch((error: Error) => result.notes.push(`could not drop its storage: ${error.message}`));
  }
  const stolen = steal();
  if (stolen !== undefined) result.notes.push(`CPU steal (time the hypervisor ran other guests) during this run: ${fixed(stolen * 100, 1)}%`);
  const problems = serverProblems(server.logs);
  for (const line of problems.slice(0, 10)) result.notes.push(`server said: ${line.slice(0, 400)}`);
  if (problems.length > 10) result.notes.push(`server said ${problems.length - 10} more line(s) at warn or above`);
  return result;
}

async function connect(port: number, name: string, document: Y.Doc, notes: string[]): Promise<HocuspocusProvider> {
  const provider = new HocuspocusProvider({
    url: `ws://127.0.0.1:${port}`,
    name,
    token: await token({ tenant: 'bench', sub: 'bench-user', role: 'editor' }),
    document,
    // A reconnect resets unsyncedChanges and resends, which would skew every number after it.
    onDisconnect: ({ event }) => notes.push(`the provider was disconnected (${event.code} ${event.reason})`),
  });
  await new Promise<void>((resolve, reject) => {
    const settle = (error?: Error) => {
      clearTimeout(timer);
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => settle(new Error(`not synced after ${SYNC_TIMEOUT_MS} ms`)), SYNC_TIMEOUT_MS);
    provider.on('authenticationFailed', ({ reason }: { reason: string }) => settle(new Error(`authentication refused: ${reason}`)));
    provider.on('synced', () => settle());
  });
  await acknowledged(provider);
  return provider;
}

/**
 * Edits at PACED_RATE for PACED_SECONDS and times each edit's acknowledgement.
 * The server acknowledges one client's writes in order, so every decrement of
 * unsyncedChanges is the acknowledgement of the oldest edit still waiting; with
 * no overlap this is exactly "until unsyncedChanges is back to 0".
 */
async function pacedEdits(provider: HocuspocusProvider, edit: (i: number) => void): Promise<{ latenciesMs: number[]; rate: number }> {
  const sentAt: number[] = [];
  const latenciesMs: number[] = [];
  let outstanding = provider.unsyncedChanges;
  const onChange = ({ number }: onUnsyncedChangesParameters) => {
    const now = performance.now();
    for (; outstanding > number; outstanding--) latenciesMs.push(now - sentAt[latenciesMs.length]!);
    outstanding = number;
  };
  provider.on('unsyncedChanges', onChange);

  const count = PACED_RATE * PACED_SECONDS;
  const startedAt = performance.now();
  for (let i = 0; i < count; i++) {
    // Scheduled from the start, not from the previous edit, so timer lateness does not add up.
    const wait = startedAt + (i * 1000) / PACED_RATE - performance.now();
    if (wait > 0) await sleep(wait);
    sentAt.push(performance.now());
    edit(i);
  }
  const rate = count / ((performance.now() - startedAt) / 1000);
  try {
    await acknowledged(provider);
  } finally {
    provider.off('unsyncedChanges', onChange);
  }
  return { latenciesMs, rate };
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

/** Server log entries at warn or above, and anything not JSON (Hocuspocus writes plain text to stderr). */
function serverProblems(logs: string): string[] {
  return logs
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => {
      try {
        const entry = JSON.parse(line) as { level?: number; msg?: string; code?: string; err?: { message?: string } };
        return (entry.level ?? 0) >= 40 ? [`[${entry.level}] ${entry.code ?? ''} ${entry.msg}${entry.err ? `: ${entry.err.message}` : ''}`] : [];
      } catch {
        return [line];
      }
    });
}
