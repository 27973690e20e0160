import { afterEach } from 'vitest';
import { createStorage, type TestStorage } from './database.ts';
import type { ServerProcess } from './server.ts';

/**
 * Per-test cleanups for files that start their own storage and servers in
 * each test: whatever a test registers is undone after it, last first.
 */
export function perTestCleanups() {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return {
    /** Runs `cleanup` after the current test. */
    later(cleanup: () => Promise<void> | void): void {
      cleanups.push(async () => cleanup());
    },
    /** A fresh embedded database (PGlite's DATA_DIR), dropped after the test. */
    async pgliteStorage(): Promise<TestStorage> {
      const storage = await createStorage('pglite');
      cleanups.push(() => storage.drop());
      return storage;
    },
    /** `server`, stopped after the test. */
    track(server: ServerProcess): ServerProcess {
      cleanups.push(() => server.stop());
      return server;
    },
  };
}
