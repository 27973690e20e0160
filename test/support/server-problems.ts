import { beforeEach } from 'vitest';
import { serverProblems, type ServerProcess } from './server.ts';

/**
 * For a server shared by several tests: when one fails, prints what the
 * server logged at warn or above, and anything not JSON, while it ran (a
 * 500's cause is only there).
 */
export function printServerProblemsOnFailure(current: () => ServerProcess | undefined): void {
  beforeEach(({ onTestFailed }) => {
    const server = current();
    const from = server?.logs.length ?? 0;
    onTestFailed(() => {
      // From the start of the line under way when the test began: output arrives in chunks, not lines.
      const logs = server?.logs ?? '';
      const problems = serverProblems(logs.slice(logs.lastIndexOf('\n', from - 1) + 1));
      if (problems.length > 0) console.error(`the server logged, during the failed test:\n${problems.join('\n').slice(-8_000)}`);
    });
  });
}
