import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { matchDeliveries } from '../bench/harness/deliveries.ts';
import { processUsage } from '../bench/harness/machine.ts';
import { summarizeProfiles } from '../bench/harness/profile.ts';
import type { ScenarioResult } from '../bench/harness/runner.ts';
import { combineRuns, median } from '../bench/harness/runs.ts';

describe('bench: matching receptions to sends', () => {
  it('matches merged broadcasts to every send they cover and counts what never arrived', () => {
    // Client 7 sent clocks 0, 1, 2 at 10, 20, 30 ms; client 9 sent clock 5 at 12 ms.
    const sent = [Float64Array.of(7, 0, 10, 7, 1, 20, 7, 2, 30), Float64Array.of(9, 5, 12)];
    // One broadcast merged clocks 0-1 of client 7 (arrived at 25); clock 2 arrived at 31; client 9's never arrived.
    const received = [Float64Array.of(7, 0, 2, 25), Float64Array.of(7, 2, 1, 31)];
    const { latenciesMs, expected } = matchDeliveries(sent, received, () => 1);
    expect([...latenciesMs].sort((a, b) => a - b)).toEqual([1, 5, 15]);
    expect(expected).toBe(4);
  });

  it('counts an awareness state the server collapsed into a later one as delivered with it', () => {
    // Client 3's states 1, 2, 3 sent at 100, 200, 210; state 1 arrived alone, 2 was overtaken by 3 (one reception for both).
    const sent = [Float64Array.of(3, 1, 100, 3, 2, 200, 3, 3, 210)];
    const received = [Float64Array.of(3, 1, 1, 101, 3, 2, 2, 214)];
    expect([...matchDeliveries(sent, received, () => 1).latenciesMs]).toEqual([1, 14, 4]);
  });
});

describe('bench: profile summary', () => {
  it('names the function a --cpu-prof profile spent its time in', () => {
    const dir = mkdtempSync(join(tmpdir(), 'concord-profile-test-'));
    try {
      const script = join(dir, 'busy.mjs');
      writeFileSync(script, 'function spinForTheProfile(until) { let x = 0; while (Date.now() < until) x += Math.sqrt(x + 1); return x; }\nspinForTheProfile(Date.now() + 400);\n');
      const run = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, script], { encoding: 'utf8' });
      expect(run.status).toBe(0);
      const summary = summarizeProfiles(dir);
      expect(summary.functions[0]!.name).toBe('spinForTheProfile');
      expect(summary.functions[0]!.share).toBeGreaterThan(0.5);
      expect(summary.busyMs).toBeGreaterThan(200);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bench: a process\'s CPU', () => {
  it('tells the time spent in user space apart from the kernel\'s', () => {
    const before = processUsage(process.pid)!;
    // JavaScript alone: user time.
    for (const until = performance.now() + 300; performance.now() < until; );
    const afterCompute = processUsage(process.pid)!;
    // Starting processes: the kernel's work (copying the page tables), the child's time not counted.
    for (const until = performance.now() + 300; performance.now() < until; ) spawnSync('true');
    const afterCalls = processUsage(process.pid)!;

    const user = (a: typeof before, b: typeof before) => b.userMs - a.userMs;
    const kernel = (a: typeof before, b: typeof before) => b.cpuMs - b.userMs - (a.cpuMs - a.userMs);
    expect(user(before, afterCompute)).toBeGreaterThanOrEqual(200);
    expect(kernel(before, afterCompute)).toBeLessThan(user(before, afterCompute) / 2);
    expect(kernel(afterCompute, afterCalls)).toBeGreaterThan(0);
  });
});

describe('bench: several runs', () => {
  const run = (concord: number, bare: number | null, note: string): ScenarioResult => ({
    id: 'S2',
    title: 'acknowledged throughput',
    description: '',
    peers: [],
    rows: [{ key: 'one', label: 'one writer', unit: 'updates/s', digits: 0, bar: { min: 5_000 }, concord, bare, ratio: null, met: concord >= 5_000 }],
    notes: [note],
    noise: {},
    profiles: [],
    seconds: 10,
  });

  it('reports the median of each figure with the spread, and judges the median against the bar', () => {
    // Two runs of three meet the bar, the median does too; one run alone would have missed.
    const combined = combineRuns([run(5_200, 20_000, 'a'), run(4_100, 24_000, 'b'), run(5_050, null, 'c')]);
    const [row] = combined.rows;
    expect(row!.concord).toBe(5_050);
    expect(row!.bare).toBe(22_000);
    expect(row!.met).toBe(true);
    expect(row!.ratio).toBeCloseTo(5_050 / 22_000);
    expect(row!.spread).toEqual({ concord: { min: 4_100, max: 5_200, runs: 3 }, bare: { min: 20_000, max: 24_000, runs: 2 } });
    expect(combined.notes).toEqual(['run 1: a', 'run 2: b', 'run 3: c']);
    expect(combined.seconds).toBe(30);
  });

  it('judges an every-run bar on each run: a median that meets it is not enough', () => {
    const tail = (p99: number): ScenarioResult => {
      const bar = { max: 30, everyRun: true };
      return { ...run(0, null, ''), id: 'S3', rows: [{ key: 'p99', label: 'delivery p99', unit: 'ms', digits: 1, bar, concord: p99, bare: 60, ratio: null, met: p99 <= bar.max }] };
    };
    const [once] = combineRuns([tail(25), tail(57), tail(28)]).rows;
    expect(once!.concord).toBe(28);
    expect(once!.met).toBe(false);
    expect(combineRuns([tail(25), tail(29), tail(28)]).rows[0]!.met).toBe(true);
  });

  it('takes the middle of an odd count and the mean of the middle two of an even one', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNull();
  });
});
