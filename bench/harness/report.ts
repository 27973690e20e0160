import type { TargetKind } from './deployment.ts';
import type { Machine, Noise } from './machine.ts';
import type { RowResult, ScenarioResult } from './runner.ts';
import type { Bar } from './scenario.ts';
import { fixed } from './stats.ts';

export interface RunReport {
  date: string;
  startedAt: string;
  smoke: boolean;
  /** Full runs of the selection (`--runs`); each figure is their median. */
  runs: number;
  machine: Machine & { postgres: string };
  scenarios: ScenarioResult[];
  /** Scenarios the harness could not run, with the error. */
  failures: Array<{ id: string; error: string }>;
}


export function barText(bar: Bar | undefined, unit: string): string {
  if (!bar) return '';
  const parts = [];
  if (bar.max !== undefined) parts.push(`≤ ${bar.max.toLocaleString('en')} ${unit}`);
  if (bar.min !== undefined) parts.push(`≥ ${bar.min.toLocaleString('en')} ${unit}`);
  if (bar.maxRatio !== undefined) parts.push(`≤ ${bar.maxRatio}× bare`);
  return `${parts.join(' and ')}${bar.everyRun ? ' in every run' : ''}`;
}

function value(row: RowResult, kind: TargetKind): string {
  const figure = row[kind];
  const spread = row.spread?.[kind];
  if (figure !== null && spread) return `${number(figure, row.digits)} (${number(spread.min, row.digits)} – ${number(spread.max, row.digits)})`;
  if (figure !== null) return number(figure, row.digits);
  return kind === 'bare' && row.bareless ? `n/a (${row.bareless})` : 'n/a';
}

function number(figure: number, digits: number): string {
  return Number.isFinite(figure) ? figure.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a';
}

function verdict(row: RowResult): string {
  if (row.met === null) return '';
  return row.met ? 'met' : '**missed**';
}

/** The results table: one row per figure, Concord beside bare Hocuspocus (over several runs: the median, with the range). */
export function resultsTable(scenarios: ScenarioResult[]): string {
  const lines = ['| scenario | figure | Concord | bare Hocuspocus | ratio | bar | result |', '|---|---|---:|---:|---:|---|---|'];
  for (const scenario of scenarios) {
    for (const row of scenario.rows) {
      const ratio = row.ratio === null ? '' : `${fixed(row.ratio, 2)}×`;
      lines.push(
        `| ${scenario.id} ${scenario.title} | ${row.label} (${row.unit}) | ${value(row, 'concord')} | ${value(row, 'bare')} | ` +
          `${ratio} | ${barText(row.bar, row.unit)} | ${verdict(row)} |`,
      );
    }
  }
  return lines.join('\n');
}

function noiseText(noise: Noise | undefined): string {
  return noise ? `steal ${fixed(noise.steal * 100, 1)}%, others' CPU ${fixed(noise.others * 100, 0)}%, load ${fixed(noise.load, 2)}` : '';
}

export function markdownReport(report: RunReport, chartFile: string): string {
  const { machine } = report;
  const out: string[] = [];
  out.push(`# Concord benchmark, ${report.date}${report.smoke ? ' (smoke run: small counts, figures not meaningful)' : ''}`, '');
  if (report.runs > 1) out.push(`Each figure is the median of ${report.runs} full runs, one after the other, with the lowest and highest in brackets.`, '');
  out.push(
    `Machine: ${machine.cpu}, ${machine.cores} cores${machine.virtualized ? ' (virtual machine)' : ''}, ${machine.memoryGiB} GiB, ${machine.kernel}; ` +
      `Node ${machine.node}; ${machine.postgres}; Redis ${machine.redis}. Servers, load processes, PostgreSQL and Redis share these cores; ` +
      `the load comes from separate processes of light protocol-level clients. Started ${report.startedAt}.`,
    '',
  );
  out.push(resultsTable(report.scenarios), '', `![Concord beside bare Hocuspocus](${chartFile})`, '');
  if (report.failures.length) {
    out.push('## Scenarios that failed to run', '');
    for (const failure of report.failures) out.push(`- ${failure.id}: ${failure.error.split('\n')[0]}`);
    out.push('');
  }
  out.push('## How busy the machine was', '', 'CPU steal (time the hypervisor gave other guests) and CPU used by processes that are not the benchmark\'s, as a share of all CPU time, over each measurement.', '');
  out.push('| scenario | Concord | bare Hocuspocus |', '|---|---|---|');
  for (const scenario of report.scenarios) {
    const runs = scenario.runNoise ?? [scenario.noise];
    const text = (kind: TargetKind) => runs.map((noise, index) => `${runs.length > 1 ? `run ${index + 1}: ` : ''}${noiseText(noise[kind])}`).join('; ');
    out.push(`| ${scenario.id} | ${text('concord')} | ${text('bare')} |`);
  }
  out.push('');
  for (const scenario of report.scenarios) out.push(...scenarioSection(scenario));
  return out.join('\n');
}

function scenarioSection(scenario: ScenarioResult): string[] {
  const out = [`## ${scenario.id}: ${scenario.title}`, '', scenario.description, ''];
  const missed = scenario.rows.filter((row) => row.met === false);
  if (missed.length) {
    out.push(`**Missed:** ${missed.map((row) => `${row.label} ${number(row.concord!, row.digits)} ${row.unit} (bar ${barText(row.bar, row.unit)})`).join('; ')}.`, '');
  }
  for (const note of scenario.notes) out.push(`- ${note}`);
  for (const peer of scenario.peers) out.push(`- Published peer figure (other hardware): ${peer}`);
  if (scenario.notes.length || scenario.peers.length) out.push('');
  for (const { deployment, summary } of scenario.profiles) {
    out.push(`Where the server's time went in a profiled re-run, ${deployment} (\`--cpu-prof\`, ${fixed(summary.busyMs / 1000, 1)} s of CPU sampled, setup included):`, '');
    out.push('| area | share |', '|---|---:|');
    for (const area of summary.areas.slice(0, 10)) out.push(`| ${area.area} | ${fixed(area.share * 100, 1)}% |`);
    out.push('', '| function (self time) | where | share |', '|---|---|---:|');
    for (const fn of summary.functions) out.push(`| \`${fn.name}\` | ${fn.location} | ${fixed(fn.share * 100, 1)}% |`);
    out.push('');
  }
  return out;
}

const ROW_HEIGHT = 30;
const LABEL_WIDTH = 330;
const PLOT_WIDTH = 420;
const COLORS = { met: '#2e7d32', missed: '#c62828', plain: '#1565c0', bare: '#9e9e9e', limit: '#212121' };

/**
 * A hand-written SVG: per figure, Concord's bar (green where it meets its
 * bar, red where it misses, blue without one) above bare Hocuspocus's (grey),
 * each figure on its own scale, with the bar's limit as a dashed line.
 */
export function svgChart(report: RunReport): string {
  const rows = report.scenarios.flatMap((scenario) => scenario.rows.map((row) => ({ scenario, row }))).filter(({ row }) => row.concord !== null || row.bare !== null);
  const height = 70 + rows.length * ROW_HEIGHT + 30;
  const width = LABEL_WIDTH + PLOT_WIDTH + 150;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">Concord beside bare Hocuspocus, ${escape(report.date)}${report.smoke ? ' (smoke run)' : ''}</text>`,
    legend(10, 44),
  ];
  rows.forEach(({ scenario, row }, index) => {
    const y = 70 + index * ROW_HEIGHT;
    const limit = row.bar?.max ?? row.bar?.min;
    const scale = Math.max(row.concord ?? 0, row.bare ?? 0, limit ?? 0) * 1.05 || 1;
    const length = (figure: number) => Math.max(1, (figure / scale) * PLOT_WIDTH);
    const color = row.met === true ? COLORS.met : row.met === false ? COLORS.missed : COLORS.plain;
    if (index > 0 && rows[index - 1]!.scenario !== scenario) parts.push(`<line x1="10" x2="${width - 10}" y1="${y - 3}" y2="${y - 3}" stroke="#e0e0e0"/>`);
    parts.push(`<text x="10" y="${y + 14}">${escape(`${scenario.id} ${row.label} (${row.unit})`)}</text>`);
    for (const [figure, fill, offset] of [[row.concord, color, 2], [row.bare, COLORS.bare, 14]] as const) {
      if (figure === null || !Number.isFinite(figure)) continue;
      parts.push(`<rect x="${LABEL_WIDTH}" y="${y + offset}" width="${fixed(length(figure), 1)}" height="11" fill="${fill}"/>`);
      parts.push(`<text x="${LABEL_WIDTH + length(figure) + 4}" y="${y + offset + 10}" font-size="11">${escape(number(figure, row.digits))}</text>`);
    }
    if (limit !== undefined) {
      const x = LABEL_WIDTH + length(limit);
      parts.push(`<line x1="${fixed(x, 1)}" x2="${fixed(x, 1)}" y1="${y}" y2="${y + 27}" stroke="${COLORS.limit}" stroke-dasharray="3,2"/>`);
    }
  });
  parts.push(`<text x="10" y="${height - 10}" font-size="11" fill="#616161">${escape(`${report.machine.cpu}, ${report.machine.cores} cores; each figure on its own scale; dashed line: the bar`)}</text>`, '</svg>');
  return parts.join('\n');
}

function legend(x: number, y: number): string {
  const items: Array<[string, string]> = [
    [COLORS.met, 'Concord, bar met'],
    [COLORS.missed, 'Concord, bar missed'],
    [COLORS.plain, 'Concord, no bar'],
    [COLORS.bare, 'bare Hocuspocus 4.7'],
  ];
  return items.map(([fill, label], i) => `<rect x="${x + i * 170}" y="${y - 10}" width="12" height="12" fill="${fill}"/><text x="${x + i * 170 + 16}" y="${y}">${label}</text>`).join('');
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
