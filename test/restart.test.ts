import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acknowledged, connect, synced } from './support/clients.ts';
import { perTestCleanups } from './support/cleanups.ts';
import { api } from './support/documents.ts';
import { ServerProcess } from './support/server.ts';
import { token } from './support/tokens.ts';

const { pgliteStorage, track } = perTestCleanups();

const RESTARTS = 10;

// The embedded database (PGlite) is the one a lock guards: PostgreSQL takes any number of instances.
describe('restarting on the embedded database after a crash', () => {
  // Each restart waits up to 5 s for the killed holder's heartbeat to go stale.
  it(`starts 0.3 s after SIGKILL, ${RESTARTS} times in ${RESTARTS}, with every acknowledged edit`, { timeout: 400_000 }, async () => {
    const { env } = await pgliteStorage();
    const server = track(await new ServerProcess(env).start());
    for (let restart = 1; restart <= RESTARTS; restart++) {
      const alice = connect(server.wsUrl, 'acme/quote/crashed', await token());
      await synced(alice);
      alice.doc.getMap('quote').set('title', `edit ${restart}`);
      await acknowledged(alice);
      alice.provider.destroy();

      await server.stop('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 300));
      // start() fails the test if the process exits before listening (a refused lock exits 1).
      await server.start();
      const { status, body } = await api(server.httpUrl, await token(), 'GET', '/api/documents/quote/crashed');
      expect({ restart, status, title: body.content?.quote.title }).toEqual({ restart, status: 200, title: `edit ${restart}` });
    }
    // Each restart found the killed holder's lock still fresh (its heartbeat is a second), waited, and took it over.
    expect(server.logs.match(/"code":"database-in-use"/g)).toHaveLength(RESTARTS);
  });

  it('takes over a lock left by a process of another host (a removed container) once its heartbeat stops', async () => {
    const { env, dataDir } = await pgliteStorage();
    // What a container killed a moment ago leaves on a shared volume: a fresh lock and a note naming a host and pid that mean nothing here.
    const directory = join(dataDir, 'pgdata');
    mkdirSync(`${directory}.lock`, { recursive: true });
    writeFileSync(`${directory}.holder.json`, JSON.stringify({ pid: 1, host: 'container-gone', url: 'http://127.0.0.1:1' }));
    const server = track(await new ServerProcess(env).start());
    expect(server.logs).toMatch(/"code":"database-in-use".*process 1 to let go/);
    expect((await server.get('/readyz')).status).toBe(200);
  });

  it('takes over an old lock at once', async () => {
    const { env, dataDir } = await pgliteStorage();
    const lock = join(dataDir, 'pgdata.lock');
    mkdirSync(lock, { recursive: true });
    const minuteAgo = new Date(Date.now() - 60_000);
    utimesSync(lock, minuteAgo, minuteAgo);
    const server = track(await new ServerProcess(env).start());
    expect(server.logs).not.toMatch(/database-in-use/);
  });
});
