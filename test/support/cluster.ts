import { afterEach, expect } from 'vitest';
import { parseDocumentName } from '../../src/documents/kinds.ts';
import type { PresenceEntry } from '../../src/presence/entry.ts';
import { connect, synced, type Client } from './clients.ts';
import { createStorage, type TestStorage } from './database.ts';
import { api } from './documents.ts';
import { RedisProcess } from './redis.ts';
import { ServerProcess } from './server.ts';
import { token } from './tokens.ts';

export interface Cluster {
  storage: TestStorage;
  redis: RedisProcess;
  servers: ServerProcess[];
}

type Cleanup = () => Promise<void> | void;

/**
 * Several instances for each test: server processes named `instance-1`,
 * `instance-2`... on one fresh PostgreSQL database and one Redis of the
 * test's own, and providers connected to them. Everything a test started is
 * torn down after it, last started first.
 */
export function clusterFixture() {
  const cleanups: Cleanup[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const fixture = {
    /** Runs `cleanup` after the test. */
    defer(cleanup: Cleanup): void {
      cleanups.push(cleanup);
    },

    /** One instance per entry of `envs`, with that entry's environment. */
    async start(envs: Array<Record<string, string>>): Promise<Cluster> {
      const storage = await createStorage('postgres');
      fixture.defer(() => storage.drop());
      const redis = await new RedisProcess().start();
      fixture.defer(() => redis.stop());
      const servers: ServerProcess[] = [];
      for (const [index, env] of envs.entries()) {
        const server = await new ServerProcess({ ...storage.env, REDIS_URL: redis.url, INSTANCE_ID: `instance-${index + 1}`, ...env }).start();
        fixture.defer(() => server.stop('SIGKILL'));
        servers.push(server);
      }
      return { storage, redis, servers };
    },

    /** One server on the run's default storage (PGlite, or PostgreSQL with TEST_DATABASE_URL), without Redis. */
    async single(env: Record<string, string> = {}): Promise<ServerProcess> {
      const storage = await createStorage();
      fixture.defer(() => storage.drop());
      const server = await new ServerProcess({ ...storage.env, ...env }).start();
      fixture.defer(() => server.stop('SIGKILL'));
      return server;
    },

    /** A synced provider for `sub` (named `sub` in capitals) on `server` (or a WebSocket URL). */
    async open(server: ServerProcess | string, name: string, sub: string, role = 'editor'): Promise<Client> {
      const client = fixture.connect(server, name, await token({ sub, name: sub.toUpperCase(), role }));
      await synced(client);
      return client;
    },

    /** A provider on its way to `server`, not waited for. */
    connect(server: ServerProcess | string, name: string, userToken: string): Client {
      const client = connect(typeof server === 'string' ? server : server.wsUrl, name, userToken);
      fixture.defer(() => client.provider.destroy());
      return client;
    },
  };
  return fixture;
}

/** GET …/presence on `server`, as a viewer. */
export async function presence(server: ServerProcess, name: string): Promise<{ name: string; users: PresenceEntry[]; complete: boolean }> {
  const { id, kind } = parseDocumentName(name);
  const response = await api(server.httpUrl, await token({ sub: 'observer', role: 'viewer' }), 'GET', `/api/documents/${kind}/${id}/presence`);
  expect(response.status).toBe(200);
  return response.body;
}

/** The awareness state `client` holds for `of`'s client id. */
export function stateOf(client: Client, of: Client): Record<string, any> | undefined {
  return client.provider.awareness!.getStates().get(of.doc.clientID);
}
