import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Deployment, type TargetKind } from './deployment.ts';
import { LoadPool } from './load.ts';
import { waitForQuiet, watchNoise, type Noise } from './machine.ts';
import { summarizeProfiles, type ProfileSummary } from './profile.ts';
import type { Measured, Row, RunContext, Scenario } from './scenario.ts';
import { fixed } from './stats.ts';

export interface RowResult extends Row {
  concord: number | null;
  bare: number | null;
  /** Concord over bare Hocuspocus. */
  ratio: number | null;
  /** Whether the bar is met; null without a bar or without a figure. */
  met: boolean | null;
  /** Over several runs (`--runs`): the figures above are medians, these their range. */
  spread?: Record<TargetKind, Spread | null>;
}

/** The lowest and highest figure of several runs, beside their median. */
export interface Spread {
  min: number;
  max: number;
  runs: number;
}

export interface ScenarioResult {
  id: string;
  title: string;
  description: string;
  peers: string[];
  rows: RowResult[];
  notes: string[];
  noise: Partial<Record<TargetKind, Noise>>;
  /** Over several runs (`--runs`): each run's noise. */
  runNoise?: Array<Partial<Record<TargetKind, Noise>>>;
  /** Where Concord's time went, per deployment of a profiled re-run, when a bar was missed. */
  profiles: Array<{ deployment: string; summary: ProfileSummary }>;
  seconds: number;
}

export interface RunOptions {
  smoke: boolean;
  adminUrl: string;
  /** Re-run Concord under --cpu-prof when a bar is missed. */
  profile: boolean;
  /** Before each measurement, wait up to this long for other people's work on the machine to quiet down. */
  quietWaitMs: number;
  log(line: string): void;
}

const TARGETS: TargetKind[] = ['concord', 'bare'];
// A server start that ran less than this (started, then restarted with other settings) has nothing to show in a profile.
const MIN_PROFILED_MS = 2_000;

/** Runs a scenario against Concord and bare Hocuspocus, judges the bars, and profiles Concord where one is missed. */
export async function runScenario(scenario: Scenario, options: RunOptions): Promise<ScenarioResult> {
  const startedAt = performance.now();
  const result: ScenarioResult = {
    id: scenario.id,
    title: scenario.title,
    description: scenario.description,
    peers: scenario.peers ?? [],
    rows: [],
    notes: [],
    noise: {},
    profiles: [],
    seconds: 0,
  };
  const measured: Partial<Record<TargetKind, Measured>> = {};
  for (const kind of TARGETS) {
    if (options.quietWaitMs > 0) {
      const { waitedMs, quiet, noise } = await waitForQuiet(options.quietWaitMs);
      if (!quiet) {
        result.notes.push(
          `${kind}: the machine was still busy after waiting ${fixed(waitedMs / 60_000, 1)} min (other processes used ${fixed(noise.others * 100, 0)}% of the CPU, steal ${fixed(noise.steal * 100, 0)}%); measured anyway`,
        );
      }
    }
    options.log(`${scenario.id} ${kind}: ${scenario.title}`);
    const outcome = await measureOn(scenario, kind, options);
    measured[kind] = outcome.measured;
    result.noise[kind] = outcome.noise;
    result.notes.push(...outcome.notes.map((note) => `${kind}: ${note}`));
  }
  result.rows = scenario.rows.map((row) => judge(row, measured.concord?.[row.key] ?? null, measured.bare?.[row.key] ?? null));

  if (options.profile && result.rows.some((row) => row.met === false)) {
    options.log(`${scenario.id}: a bar was missed; running Concord again under --cpu-prof`);
    const dir = mkdtempSync(join(tmpdir(), 'concord-bench-profile-'));
    try {
      result.profiles = (await measureOn(scenario, 'concord', options, dir)).profiles;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  result.seconds = (performance.now() - startedAt) / 1000;
  return result;
}

/** Measures `scenario` on one target; with `profileDir`, every server process writes a CPU profile there, one folder per deployment. */
async function measureOn(scenario: Scenario, kind: TargetKind, options: RunOptions, profileDir?: string) {
  const deployments: Deployment[] = [];
  const pools: LoadPool[] = [];
  const notes: string[] = [];
  const stopWatching = watchNoise(() => [...deployments.flatMap((d) => d.pids), ...pools.flatMap((p) => p.pids)]);
  const run: RunContext = {
    kind,
    smoke: options.smoke,
    async deploy(choices = {}) {
      const deployment = await Deployment.start({ kind, adminUrl: options.adminUrl, profileDir: profileDir && join(profileDir, String(deployments.length)), ...choices });
      deployments.push(deployment);
      return deployment;
    },
    load(processes) {
      const pool = new LoadPool(processes);
      pools.push(pool);
      return pool;
    },
    note: (text) => notes.push(text),
    progress: (text) => options.log(`${scenario.id} ${kind}: ${text}`),
  };
  let measured: Measured;
  let noise: Noise;
  try {
    measured = await scenario.measure(run);
  } finally {
    noise = stopWatching();
    await Promise.all(pools.map((pool) => pool.close()));
    for (const deployment of deployments) {
      const problems = await deployment.stop();
      for (const line of problems.slice(0, 5)) notes.push(`server said: ${line}`);
      if (problems.length > 5) notes.push(`server said ${problems.length - 5} more line(s) at warn or above`);
    }
  }
  for (const [key, figure] of Object.entries(measured)) {
    // A figure that is not a number means the harness measured nothing: it is broken, not the server slow.
    if (figure !== null && !Number.isFinite(figure)) throw new Error(`${scenario.id} ${kind}: figure "${key}" is ${figure}`);
  }
  // The profiles are written as the server processes exit.
  const profiles = deployments
    .flatMap((deployment) => deployment.profiles)
    .map(({ label, dir }) => ({ deployment: label, summary: summarizeProfiles(dir) }))
    .filter(({ summary }) => summary.busyMs >= MIN_PROFILED_MS);
  return { measured, noise, notes, profiles };
}

/** A row's figures against its bar. */
export function judge(row: Row, concord: number | null, bare: number | null): RowResult {
  const ratio = concord !== null && bare !== null && bare !== 0 ? concord / bare : null;
  let met: boolean | null = null;
  if (row.bar && concord !== null) {
    const { max, min, maxRatio } = row.bar;
    met = (max === undefined || concord <= max) && (min === undefined || concord >= min) && (maxRatio === undefined || (ratio !== null && ratio <= maxRatio));
  }
  return { ...row, concord, bare, ratio, met };
}
