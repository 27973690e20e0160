import { relative } from 'node:path';
import type { Reporter, TestModule, Vitest } from 'vitest/node';
import { NEEDS_POSTGRES } from './database.ts';

/**
 * Ends every run with one line per reason tests were skipped: how many tests
 * need PostgreSQL, in which files, and how to run them; any other skip is
 * named test by test, since nothing else may be skipped (unless a name
 * filter, `-t`, left tests out).
 */
export class SkipSummary implements Reporter {
  private filtered = false;

  onInit(vitest: Vitest): void {
    this.filtered = vitest.config.testNamePattern !== undefined;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const needPostgres = new Map<string, number>();
    const others: string[] = [];
    for (const module of modules) {
      const file = relative(process.cwd(), module.moduleId);
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state !== 'skipped') continue;
        if (test.fullName.includes(NEEDS_POSTGRES) || result.note?.includes(NEEDS_POSTGRES)) needPostgres.set(file, (needPostgres.get(file) ?? 0) + 1);
        else if (!this.filtered) others.push(`${file} > ${test.fullName}${result.note ? ` (${result.note})` : ''}`);
      }
    }
    const count = [...needPostgres.values()].reduce((sum, n) => sum + n, 0);
    if (count > 0) {
      const files = [...needPostgres].map(([file, n]) => `${file} ${n}`).join(', ');
      console.log(`\nSkipped ${count} tests that need PostgreSQL (${files}): set TEST_DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/postgres (a role that may create databases) to run them.`);
    }
    for (const skipped of others) console.log(`Skipped: ${skipped}`);
  }
}
