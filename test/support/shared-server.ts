import { afterAll, beforeAll } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { connect, synced, type Client } from './clients.ts';
import { createReadableStorage, type TestStorage } from './database.ts';
import { openTestDatabase } from './inspect.ts';
import { printServerProblemsOnFailure } from './server-problems.ts';
import { ServerProcess } from './server.ts';
import { token } from './tokens.ts';

/**
 * One server on fresh storage for a whole test file (PostgreSQL with
 * TEST_DATABASE_URL, else PGlite), with the database open in the test process
 * to read what the server wrote.
 */
export function sharedServer(env: Record<string, string> = {}) {
  let storage: TestStorage | undefined;
  const clients: Client[] = [];
  const shared = {
    server: undefined as unknown as ServerProcess,
    db: undefined as unknown as Database,
    /** A synced provider for `sub` with `role`, destroyed after the file (or by `closeAll`). */
    async open(name: string, sub: string, role = 'editor'): Promise<Client> {
      const client = connect(shared.server.wsUrl, name, await token({ sub, role }));
      clients.push(client);
      await synced(client);
      return client;
    },
    closeAll(): void {
      for (const client of clients.splice(0)) client.provider.destroy();
    },
  };
  beforeAll(async () => {
    storage = await createReadableStorage();
    shared.server = await new ServerProcess({ ...storage.env, ...env }).start();
    shared.db = await openTestDatabase(storage);
  });
  printServerProblemsOnFailure(() => shared.server);
  afterAll(async () => {
    shared.closeAll();
    await shared.db?.close();
    await shared.server?.stop();
    await storage?.drop();
  });
  return shared;
}
