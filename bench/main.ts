/**
 * `npm run bench`: every scenario against Concord and against bare Hocuspocus
 * 4.7, the bars judged, results written to bench/results/<date>.{md,json,svg}.
 * `npm run bench -- --smoke`: a seconds-long version of every scenario for CI;
 * it fails only when the harness breaks, never on a missed bar.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import pg from 'pg';
import { describeMachine } from './harness/machine.ts';
import { markdownReport, resultsTable, svgChart, type RunReport } from './harness/report.ts';
import { runScenario, type ScenarioResult } from './harness/runner.ts';
import { combineRuns } from './harness/runs.ts';
import { scenarios } from './scenarios/index.ts';

const program = new Command()
  .name('npm run bench --')
  .description('Measures Concord beside a bare Hocuspocus 4.7 server, scenario by scenario, and judges the bars.')
  .option('--smoke', 'a seconds-long run of every scenario with small counts (CI): fails only if the harness breaks')
  .addOption(new Option('--only <ids>', 'comma-separated scenario ids').argParser((ids: string) => ids.split(',').map((id) => id.trim().toUpperCase())))
  .option('--out <dir>', 'where results are written (default bench/results; test-output/bench-smoke with --smoke)')
  .option('--database-url <url>', 'PostgreSQL where each run creates its databases', process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || 'postgres://concord:concord@127.0.0.1:5432/postgres')
  .addOption(
    new Option('--runs <n>', 'full runs of the selection, one after the other; each figure is their median, with the spread (default 1)').argParser((runs: string) => {
      const value = Number(runs);
      if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError('a whole number, 1 or more');
      return value;
    }),
  )
  .option('--no-profile', 'do not re-run Concord under --cpu-prof where a bar is missed')
  .addOption(
    new Option('--quiet-wait <minutes>', 'before each measurement, wait up to this long for other processes to use under 10% of the CPU and steal to fall under 5% (default 5; 0 with --smoke)').argParser((minutes: string) => {
      const value = Number(minutes);
      if (!Number.isFinite(value) || value < 0) throw new InvalidArgumentError('a number of minutes, 0 or more');
      return value;
    }),
  )
  .parse();

const options = program.opts<{ smoke?: boolean; only?: string[]; out?: string; databaseUrl: string; profile: boolean; quietWait?: number; runs?: number }>();
const smoke = options.smoke ?? false;
const unknown = options.only?.filter((id) => !scenarios.some((scenario) => scenario.id === id)) ?? [];
if (unknown.length) program.error(`unknown scenario(s): ${unknown.join(', ')} (known: ${scenarios.map((s) => s.id).join(', ')})`);
const selected = scenarios.filter((scenario) => !options.only || options.only.includes(scenario.id));
// A scenario that has not finished by then is stuck: the harness is broken.
const scenarioTimeoutMs = (smoke ? 3 : 40) * 60_000;

const startedAt = new Date();
const log = (line: string) => console.log(`[${((Date.now() - startedAt.getTime()) / 1000).toFixed(0).padStart(4)} s] ${line}`);
const report: RunReport = {
  date: startedAt.toISOString().slice(0, 10),
  startedAt: startedAt.toISOString(),
  smoke,
  runs: options.runs ?? 1,
  machine: { ...describeMachine(), postgres: await postgresVersion(options.databaseUrl) },
  scenarios: [],
  failures: [],
};
log(`${report.machine.cpu}, ${report.machine.cores} cores, ${report.machine.postgres}; ${selected.map((s) => s.id).join(' ')}${smoke ? ' (smoke)' : ''}`);

const runs = new Map<string, ScenarioResult[]>();
for (let run = 1; run <= report.runs; run++) {
  if (report.runs > 1) log(`run ${run} of ${report.runs}`);
  for (const scenario of selected) {
    const watchdog = setTimeout(() => {
      console.error(`bench: ${scenario.id} still running after ${scenarioTimeoutMs / 60_000} min; giving up`);
      process.exit(1);
    }, scenarioTimeoutMs);
    try {
      const result = await runScenario(scenario, {
        smoke,
        adminUrl: options.databaseUrl,
        // A missed bar is profiled once, in the last run.
        profile: options.profile && !smoke && run === report.runs,
        quietWaitMs: (options.quietWait ?? (smoke ? 0 : 5)) * 60_000,
        log,
      });
      runs.set(scenario.id, [...(runs.get(scenario.id) ?? []), result]);
      log(`${scenario.id} done in ${result.seconds.toFixed(0)} s`);
    } catch (error) {
      report.failures.push({ id: report.runs > 1 ? `${scenario.id} (run ${run})` : scenario.id, error: (error as Error).stack ?? String(error) });
      console.error(`bench: ${scenario.id} failed: ${(error as Error).stack}`);
    } finally {
      clearTimeout(watchdog);
    }
  }
}
report.scenarios = [...runs.values()].map(combineRuns);

const out = options.out ?? (smoke ? 'test-output/bench-smoke' : 'bench/results');
mkdirSync(out, { recursive: true });
const base = join(out, report.date);
writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(`${base}.svg`, `${svgChart(report)}\n`);
writeFileSync(`${base}.md`, `${markdownReport(report, `${report.date}.svg`)}\n`);

console.log(`\n${resultsTable(report.scenarios)}\n`);
for (const scenario of report.scenarios) for (const note of scenario.notes) console.log(`${scenario.id} ${note}`);
console.log(`\nwritten: ${base}.md, ${base}.json, ${base}.svg`);
if (report.failures.length) {
  console.error(`bench: ${report.failures.length} scenario(s) failed to run: ${report.failures.map((f) => f.id).join(', ')}`);
  process.exit(1);
}
process.exit(0);

async function postgresVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    return `PostgreSQL ${rows[0]!.server_version.split(' ')[0]}`;
  } catch (error) {
    return program.error(`bench: PostgreSQL at ${redact(url)} is not usable: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}
