import type { TargetKind } from './deployment.ts';
import { judge, type RowResult, type ScenarioResult, type Spread } from './runner.ts';

/**
 * One scenario's result over several full runs: each figure is the median of
 * the runs that produced it, judged against its bar as a single run's would
 * be (an every-run bar: each run's figure), with the spread beside it; notes are kept per run, profiles from the
 * runs that took them.
 */
export function combineRuns(runs: ScenarioResult[]): ScenarioResult {
  const [first] = runs;
  if (!first) throw new Error('no runs to combine');
  if (runs.length === 1) return first;
  const rows = first.rows.map((row) => {
    const figures = (kind: TargetKind) => runs.map((run) => run.rows.find((other) => other.key === row.key)?.[kind] ?? null).filter((figure): figure is number => figure !== null);
    const concord = figures('concord');
    const bare = figures('bare');
    const combined: RowResult = judge(row, median(concord), median(bare));
    const met = row.bar?.everyRun && combined.met !== null ? runs.every((run) => run.rows.find((other) => other.key === row.key)?.met === true) : combined.met;
    return { ...combined, met, spread: { concord: spreadOf(concord), bare: spreadOf(bare) } };
  });
  return {
    ...first,
    rows,
    notes: runs.flatMap((run, index) => run.notes.map((note) => `run ${index + 1}: ${note}`)),
    runNoise: runs.map((run) => run.noise),
    profiles: runs.flatMap((run) => run.profiles),
    seconds: runs.reduce((sum, run) => sum + run.seconds, 0),
  };
}

/** The middle figure (the mean of the two middle ones for an even count); null for none. */
export function median(figures: number[]): number | null {
  if (figures.length === 0) return null;
  const sorted = [...figures].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function spreadOf(figures: number[]): Spread | null {
  return figures.length ? { min: Math.min(...figures), max: Math.max(...figures), runs: figures.length } : null;
}
