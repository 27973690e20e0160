/**
 * CI's verdict on its two test passes (vitest JSON reports): nothing failed,
 * nothing was skipped on PostgreSQL, and every test skipped on PGlite (it needs
 * PostgreSQL) ran and passed on PostgreSQL. No test is lost silently.
 * Usage: node .ci/check-results.ts <postgres.json> <pglite.json>
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { NEEDS_POSTGRES } from '../test/support/database.ts';

interface Report {
  success: boolean;
  numPassedTests: number;
  numFailedTests: number;
  testResults: Array<{ name: string; assertionResults: Array<{ fullName: string; status: string }> }>;
}

/** Each test by file and name (a PostgreSQL-only suite's title names the reason when skipped: that part is left out) to its status. */
function statuses(file: string): { report: Report; tests: Map<string, string> } {
  const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
  const tests = new Map<string, string>();
  for (const module of report.testResults) {
    for (const test of module.assertionResults) tests.set(`${relative(process.cwd(), module.name)} > ${test.fullName.replace(` [${NEEDS_POSTGRES}]`, '')}`, test.status);
  }
  return { report, tests };
}

const [postgresFile, pgliteFile] = process.argv.slice(2) as [string, string];
const postgres = statuses(postgresFile);
const pglite = statuses(pgliteFile);
const problems: string[] = [];
for (const [name, { report, tests }] of [['PostgreSQL', postgres], ['PGlite', pglite]] as const) {
  if (!report.success || report.numFailedTests > 0) problems.push(`the ${name} pass failed`);
  for (const [test, status] of tests) {
    if (status === 'passed' || status === 'failed') continue;
    if (name === 'PostgreSQL') problems.push(`skipped on PostgreSQL: ${test}`);
    else if (postgres.tests.get(test) !== 'passed') problems.push(`skipped on PGlite and not run on PostgreSQL: ${test}`);
  }
}
for (const test of postgres.tests.keys()) if (!pglite.tests.has(test)) problems.push(`not in the PGlite pass: ${test}`);
for (const problem of problems) console.error(`CI: ${problem}`);
const skippedOnPglite = [...pglite.tests.values()].filter((status) => status !== 'passed' && status !== 'failed').length;
console.log(
  `PostgreSQL: ${postgres.report.numPassedTests} passed; PGlite: ${pglite.report.numPassedTests} passed, ${skippedOnPglite} skipped there (they need PostgreSQL)`,
);
const failed = postgres.report.numFailedTests + pglite.report.numFailedTests;
// The plain closing line CI reads.
console.log(`${postgres.report.numPassedTests + pglite.report.numPassedTests} passed, ${failed} failed`);
process.exit(problems.length > 0 ? 1 : 0);
