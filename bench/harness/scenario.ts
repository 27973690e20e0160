import { setTimeout as sleep } from 'node:timers/promises';
import { matchDeliveries, summarize } from './deliveries.ts';
import type { Deployment, DeploymentOptions, TargetKind } from './deployment.ts';
import { idleShare } from './machine.ts';
import type { LoadPool, Phase, PhaseReport } from './load.ts';
import { fixed } from './stats.ts';

/** The bar a figure of Concord's must meet. */
export interface Bar {
  max?: number;
  min?: number;
  /** Concord's figure over bare Hocuspocus's. */
  maxRatio?: number;
  /** Over several runs (`--runs`), met only if every run's figure meets it, not just their median (a tail that must hold whatever the machine). */
  everyRun?: boolean;
}

/** One reported figure of a scenario. */
export interface Row {
  key: string;
  label: string;
  unit: string;
  digits: number;
  bar?: Bar;
  /** Why bare Hocuspocus has no such figure (no persistence, say). */
  bareless?: string;
}

/** A scenario's figures by row key; null when there is none (see Row.bareless). */
export type Measured = Record<string, number | null>;

/** What a scenario's measurement gets from the runner, for one target. */
export interface RunContext {
  kind: TargetKind;
  smoke: boolean;
  deploy(options?: Pick<DeploymentOptions, 'instances' | 'storage' | 'redis'>): Promise<Deployment>;
  load(processes: number): LoadPool;
  note(text: string): void;
  progress(text: string): void;
}

export interface Scenario {
  id: string;
  title: string;
  /** What is measured and how, in a sentence or two. */
  description: string;
  rows: Row[];
  /** Published figures of peers (other hardware) to read beside these. */
  peers?: string[];
  measure(run: RunContext): Promise<Measured>;
}

/** What a server did during a phase. */
export interface PhaseOutcome {
  reports: PhaseReport[];
  seconds: number;
  /** Server CPU over the phase, in cores (1 = one core busy all the time). */
  serverCores: number;
  /** The part of it in user space (JavaScript, V8, libuv); the rest is the kernel's, socket reads and writes above all. */
  serverUserCores: number;
  /** The CPU of the deployment's PostgreSQL backends over the phase, in cores (0 without PostgreSQL). */
  postgresCores: number;
  /** Share of the whole machine's CPU time no one used during the phase. */
  machineIdle: number;
  /** Server resident memory at the end of the phase, and the most it reached (sampled every second). */
  rssBytes: number;
  peakRssBytes: number;
}

/** Runs one phase of activity for `seconds`, lets what is on its way arrive, and collects the reports. */
export async function runPhase(deployment: Deployment, pool: LoadPool, phase: Phase, seconds: number, settleMs = 1_000): Promise<PhaseOutcome> {
  const before = deployment.usage();
  const postgresBefore = deployment.postgresCpuMs();
  const idle = idleShare();
  let peakRssBytes = before.rssBytes;
  const sampler = setInterval(() => (peakRssBytes = Math.max(peakRssBytes, deployment.usage().rssBytes)), 1_000);
  const startedAt = performance.now();
  try {
    await pool.start(phase);
    await sleep(seconds * 1000);
  } finally {
    clearInterval(sampler);
  }
  const after = deployment.usage();
  const elapsed = (performance.now() - startedAt) / 1000;
  const postgresCores = (deployment.postgresCpuMs() - postgresBefore) / 1000 / elapsed;
  const machineIdle = idle();
  const reports = await pool.stop(settleMs);
  return {
    reports,
    seconds: elapsed,
    serverCores: (after.cpuMs - before.cpuMs) / 1000 / elapsed,
    serverUserCores: (after.userMs - before.userMs) / 1000 / elapsed,
    postgresCores,
    machineIdle,
    rssBytes: after.rssBytes,
    peakRssBytes: Math.max(peakRssBytes, after.rssBytes),
  };
}

/**
 * Delivery figures of a phase: sender to every other recording client of the
 * same document, or only to those of one group (the readers on another
 * instance, say).
 */
export function deliveries(pool: LoadPool, reports: PhaseReport[], what: 'updates' | 'awareness', group?: string) {
  const documentOf = new Map<number, string>();
  const recorders = new Map<string, number>();
  const counted = new Set<number>();
  pool.specs.forEach((spec, index) => {
    const client = pool.clientIds[index]!;
    documentOf.set(client, spec.document);
    if (!spec.record || (group !== undefined && spec.group !== group)) return;
    counted.add(client);
    recorders.set(spec.document, (recorders.get(spec.document) ?? 0) + 1);
  });
  const receiversOf = (client: number) => (recorders.get(documentOf.get(client)!) ?? 0) - (counted.has(client) ? 1 : 0);
  const [sent, received] = what === 'updates' ? (['sentUpdates', 'receivedUpdates'] as const) : (['sentAwareness', 'receivedAwareness'] as const);
  const receptions = reports.flatMap((report) => Object.entries(report[received]).flatMap(([name, records]) => (group === undefined || name === group ? [records] : [])));
  return summarize(matchDeliveries(reports.map((report) => report[sent]), receptions, receiversOf));
}

/** How many deliveries were measured, against those expected (a lost one shows here), and the slowest. */
export function deliveryNote(delivered: ReturnType<typeof deliveries>): string {
  return `${delivered.count.toLocaleString('en')} deliveries (${fixed(delivered.deliveredShare * 100, 2)}% of those expected), p99 ${fixed(delivered.p99, 1)} ms, max ${fixed(delivered.max, 1)} ms`;
}

/** All acknowledgement latencies of a phase. */
export function ackLatencies(reports: PhaseReport[]): Float64Array {
  const all = new Float64Array(reports.reduce((sum, r) => sum + r.ackLatencies.length, 0));
  let offset = 0;
  for (const r of reports) {
    all.set(r.ackLatencies, offset);
    offset += r.ackLatencies.length;
  }
  return all;
}

/**
 * One line on the load processes and on what went wrong at the clients: a
 * busy load generator delays what it records, so its event-loop delay is
 * reported beside every figure.
 */
export function loadNote(name: string, outcome: PhaseOutcome): string {
  const { reports, seconds } = outcome;
  const cpu = reports.reduce((sum, r) => sum + r.cpuMs, 0) / 1000 / seconds;
  const delay = Math.max(...reports.map((r) => r.eventLoopDelayP99Ms));
  const problems = reports.reduce((sum, r) => sum + r.problemCount, 0);
  const examples = reports.flatMap((r) => r.problems).slice(0, 3);
  return (
    `${name}: server ${fixed(outcome.serverCores * 100, 0)}% of a core (${fixed(outcome.serverUserCores * 100, 0)}% in user space), RSS ${fixed(outcome.rssBytes / 2 ** 20, 0)} MiB; ` +
    (outcome.postgresCores > 0 ? `PostgreSQL backends ${fixed(outcome.postgresCores * 100, 0)}% of a core; ` : '') +
    `${reports.length} load processes used ${fixed(cpu * 100, 0)}% of a core, event-loop delay p99 ≤ ${fixed(delay, 1)} ms; machine ${fixed(outcome.machineIdle * 100, 0)}% idle` +
    (problems ? `; ${problems} client problem(s), e.g. ${examples.join(' | ')}` : '')
  );
}

/** Edits acknowledged per second over a phase. */
export function acknowledgedRate(outcome: PhaseOutcome): number {
  return outcome.reports.reduce((sum, r) => sum + r.acknowledged, 0) / outcome.seconds;
}
