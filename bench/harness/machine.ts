import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

// Linux reports process CPU time in clock ticks of 10 ms (CLK_TCK = 100 on every common build).
const MS_PER_TICK = 10;
const NOISE_SAMPLE_MS = 250;

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  virtualized: boolean;
  node: string;
  redis: string;
}

export function describeMachine(): Machine {
  let virtualized = false;
  try {
    virtualized = /\bhypervisor\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {}
  let redis = 'not installed';
  try {
    redis = /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
  } catch {}
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: `Linux ${release()}`,
    virtualized,
    node: process.version,
    redis,
  };
}

/** CPU time (user + system, all threads; and the user part alone) and resident memory of a process, or undefined once it is gone. */
export function processUsage(pid: number): { cpuMs: number; userMs: number; rssBytes: number; startedAtTicks: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
    const [userTicks, systemTicks] = [Number(fields[11]), Number(fields[12])];
    return { cpuMs: (userTicks + systemTicks) * MS_PER_TICK, userMs: userTicks * MS_PER_TICK, rssBytes: rssKiB * 1024, startedAtTicks: Number(fields[19]) };
  } catch {
    return undefined;
  }
}

/** PostgreSQL processes working on `database` (their titles name it: backends, autovacuum workers). */
export function postgresBackends(database: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (title.startsWith('postgres: ') && title.includes(database)) pids.push(Number(entry));
    } catch {}
  }
  return pids;
}

/** Machine-wide CPU ticks since boot: [busy, steal, total] (from /proc/stat's first line). */
function machineTicks(): [number, number, number] {
  const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq!;
  return [busy, steal!, busy + idle! + iowait! + steal!];
}

/** Starts a window over the whole machine's CPU; the returned function ends it: busy and stolen ticks, as shares of all, and all. */
function machineWindow(): () => { busy: number; steal: number; ticks: number } {
  const [busy0, steal0, total0] = machineTicks();
  return () => {
    const [busy, steal, total] = machineTicks();
    const ticks = total - total0;
    return ticks > 0 ? { busy: (busy - busy0) / ticks, steal: (steal - steal0) / ticks, ticks } : { busy: 0, steal: 0, ticks };
  };
}

/** Starts a window over the whole machine's CPU; the returned function ends it: the share of all CPU time no one used. */
export function idleShare(): () => number {
  const machine = machineWindow();
  return () => {
    const { busy, steal, ticks } = machine();
    return ticks > 0 ? 1 - busy - steal : 0;
  };
}

function bootTicks(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * (1000 / MS_PER_TICK);
}

/** How busy the machine was during a window, and how much of that was not the benchmark. */
export interface Noise {
  /** Share of all CPU time the hypervisor gave to other guests. */
  steal: number;
  /** Share of all CPU time used by anything. */
  busy: number;
  /** Share of all CPU time used by processes that are not the benchmark's (other people's work). */
  others: number;
  /** 1-minute load average at the end. */
  load: number;
}

/**
 * Starts watching the machine; the returned function ends the window. `ours()`
 * lists the benchmark's processes (servers, load processes, Postgres backends,
 * Redis); their CPU is taken out of the machine's busy time, and what remains
 * is other people's work on this shared machine. They are sampled four times
 * a second, so that a process that ends inside the window (a server restarted
 * with other settings) keeps what it used.
 */
export function watchNoise(ours: () => number[]): () => Noise {
  const machine = machineWindow();
  const startedAt = bootTicks();
  /** CPU of each process at the window's start (0 for one started inside it), and when last seen. */
  const [first, last] = [new Map<number, number>(), new Map<number, number>()];
  const sample = () => {
    for (const pid of new Set([process.pid, ...ours(), ...last.keys()])) {
      const usage = processUsage(pid);
      if (!usage) continue;
      if (!first.has(pid)) first.set(pid, usage.startedAtTicks >= startedAt ? 0 : usage.cpuMs);
      last.set(pid, usage.cpuMs);
    }
  };
  sample();
  const sampler = setInterval(sample, NOISE_SAMPLE_MS);
  sampler.unref();
  return () => {
    clearInterval(sampler);
    sample();
    const { busy, steal, ticks } = machine();
    let oursMs = 0;
    for (const [pid, cpuMs] of last) oursMs += cpuMs - first.get(pid)!;
    return { steal, busy, others: Math.max(0, busy - oursMs / MS_PER_TICK / ticks), load: loadavg()[0]! };
  };
}

// A machine is quiet enough to measure on when other people's processes use less than this share of it,
// and the hypervisor steals less than that from it.
const QUIET_SHARE = 0.1;
const QUIET_STEAL = 0.05;
const QUIET_SAMPLE_MS = 3_000;

/**
 * On a shared machine: waits (at most `maxWaitMs`) until other processes use
 * less than a tenth of the CPU over a few seconds and steal is low; returns
 * how long it waited and how busy the machine was last.
 */
export async function waitForQuiet(maxWaitMs: number): Promise<{ waitedMs: number; quiet: boolean; noise: Noise }> {
  const startedAt = performance.now();
  for (;;) {
    const stop = watchNoise(() => []);
    await sleep(QUIET_SAMPLE_MS);
    const noise = stop();
    const quiet = noise.others < QUIET_SHARE && noise.steal < QUIET_STEAL;
    const waitedMs = performance.now() - startedAt;
    if (quiet || waitedMs >= maxWaitMs) return { waitedMs, quiet, noise };
  }
}
