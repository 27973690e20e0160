import { afterAll, beforeAll } from 'vitest';
import { createStorage, type TestStorage } from './database.ts';
import { printServerProblemsOnFailure } from './server-problems.ts';
import { startServer, type ServerProcess } from './server.ts';

/** What `serverForSuite` started, read inside the suite's tests. */
export interface SuiteServer {
  storage: TestStorage;
  server: ServerProcess;
}

/**
 * A server on fresh storage for the enclosing suite (or file): started before
 * its tests with `env` added to the storage's, stopped after them, and its
 * storage dropped.
 */
export function serverForSuite(env: Record<string, string> = {}): SuiteServer {
  const suite = {} as SuiteServer;
  beforeAll(async () => {
    suite.storage = await createStorage();
    suite.server = await startServer({ ...suite.storage.env, ...env });
  });
  printServerProblemsOnFailure(() => suite.server);
  afterAll(async () => {
    await suite.server?.stop();
    await suite.storage?.drop();
  });
  return suite;
}
