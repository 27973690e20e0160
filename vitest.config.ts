import { defineConfig } from 'vitest/config';
import { SkipSummary } from './test/support/skip-summary.ts';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Every file starts real server processes; on two cores they run one file at a time.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default', new SkipSummary()],
  },
});
