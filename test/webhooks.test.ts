import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import type { Database } from '../src/db/database.ts';
import { deliveryLog as storedDeliveryLog, insertDeliveries, recordDead, recordDelivered, recordRetry } from '../src/db/webhooks.ts';
import type { ChangeEvent } from '../src/events/event.ts';
import { WebhookEndpoints } from '../src/webhooks/endpoints.ts';
import { sendOnce } from '../src/webhooks/sender.ts';
import { acknowledged, connect, synced, waitFor, type Client } from './support/clients.ts';
import { clusterFixture } from './support/cluster.ts';
import { perTestCleanups } from './support/cleanups.ts';
import { backends, createReadableStorage, createStorage, postgresTitle, postgresUrl } from './support/database.ts';
import { addComment, api } from './support/documents.ts';
import { openTestDatabase, rowsOf, suiteDatabase } from './support/inspect.ts';
import { Receiver } from './support/receiver.ts';
import { ServerProcess } from './support/server.ts';
import { serverForSuite } from './support/suite-server.ts';
import { sharedServer } from './support/shared-server.ts';
import { token } from './support/tokens.ts';

// Loopback receivers need WEBHOOK_ALLOW_PRIVATE; retries come within a fraction of a second.
const RETRIES = '0.05,0.1,0.2,0.3,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5';
const webhookEnv = { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_RETRY_SCHEDULE: RETRIES, WEBHOOK_DISABLE_AFTER: '3', EVENTS_POLL_MS: '100' };
const WAIT_MS = 30_000;

let tenants = 0;
let titles = 0;
/** A tenant of the test's own: an endpoint receives every event of its tenant. */
function freshTenant(): string {
  return `hooks${process.pid}x${++tenants}`;
}

function admin(tenant: string) {
  return token({ tenant, sub: 'root', role: 'admin' });
}

async function register(server: ServerProcess, tenant: string, body: Record<string, unknown>) {
  const response = await api(server.httpUrl, await admin(tenant), 'POST', '/api/webhooks', body);
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body as { id: string; url: string; types: string[] | null; secret: string };
}

async function deliveryLog(server: ServerProcess, tenant: string, endpoint: string) {
  const response = await api(server.httpUrl, await admin(tenant), 'GET', `/api/webhooks/${endpoint}/deliveries?limit=1000`);
  expect(response.status).toBe(200);
  return response.body.deliveries as Array<{ id: string; eventIds: string[]; status: string; attempts: number; lastStatus: number | null; lastError: string | null }>;
}

/** Edits `count` quote titles in `names` (tenant's documents), each edit acknowledged before the next. */
async function edit(server: ServerProcess, tenant: string, names: string[], count: number): Promise<void> {
  const clients: Client[] = [];
  try {
    for (const name of names) {
      const client = connect(server.wsUrl, `${tenant}/quote/${name}`, await token({ tenant, sub: 'ed', role: 'editor' }));
      clients.push(client);
      await synced(client);
    }
    for (let index = 0; index < count; index++) {
      for (const client of clients) client.doc.getMap('quote').set('title', `title ${++titles}`);
      // Ids unique across both instances' writers (a taken id is refused).
      if (index === 1) for (const client of clients) addComment(client.doc, { id: `c${++titles}`, authorId: 'ed', body: 'a note' });
      await Promise.all(clients.map((client) => acknowledged(client)));
    }
  } finally {
    for (const client of clients) client.provider.destroy();
  }
}

interface CommittedEvent {
  id: string;
  name: string;
  type: string;
  position: string;
}

function committedEvents(db: Database, tenant: string): Promise<CommittedEvent[]> {
  return rowsOf<CommittedEvent>(db, tenant, 'SELECT id, name, type, position FROM change_events ORDER BY position');
}

/** Every committed event of the tenant has reached the receiver. */
async function allReceived(db: Database, tenant: string, receiver: Receiver, types?: string[]): Promise<CommittedEvent[]> {
  return waitFor(
    'every committed event at the receiver',
    async () => {
      const committed = (await committedEvents(db, tenant)).filter((event) => !types || types.includes(event.type));
      const received = new Set(receiver.taken.map((event) => event.id));
      return committed.length > 0 && committed.every((event) => received.has(event.id)) && committed;
    },
    WAIT_MS,
  );
}

/** Each document's events arrived in feed (and so seq) order, counting only first arrivals. */
function expectOrderPerDocument(events: ChangeEvent[]): void {
  const seen = new Set<string>();
  const lastPosition = new Map<string, number>();
  for (const event of events) {
    if (seen.has(event.id)) continue;
    seen.add(event.id);
    expect(event.position, `${event.document.name} out of order`).toBeGreaterThan(lastPosition.get(event.document.name) ?? 0);
    lastPosition.set(event.document.name, event.position);
  }
}

function expectOncePerEvent(events: ChangeEvent[]): void {
  const ids = events.map((event) => event.id);
  expect(ids.length).toBe(new Set(ids).size);
}

describe('webhooks', () => {
  const shared = sharedServer(webhookEnv);
  const receivers = perTestCleanups();

  async function receiver(answer?: ConstructorParameters<typeof Receiver>[0]): Promise<Receiver> {
    const started = await new Receiver(answer).start();
    receivers.later(() => started.stop());
    return started;
  }

  it('every acknowledged change reaches the receiver once per event id, in seq order per document; signatures verify with the secret only', async () => {
    const tenant = freshTenant();
    const hook = await receiver();
    const endpoint = await register(shared.server, tenant, { url: hook.url });
    expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    await edit(shared.server, tenant, ['a', 'b'], 12);

    const committed = await allReceived(shared.db, tenant, hook);
    expect(new Set(hook.taken.map((event) => event.id))).toEqual(new Set(committed.map((event) => event.id)));
    expectOncePerEvent(hook.taken);
    expectOrderPerDocument(hook.taken);
    expect(hook.taken.map((event) => event.type)).toContain('comment.added');

    const signer = new Webhook(endpoint.secret);
    const stranger = new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`);
    for (const request of hook.requests) {
      const headers = request.headers as Record<string, string>;
      expect(headers['webhook-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(signer.verify(request.body, headers)).toEqual({ events: request.events });
      expect(() => stranger.verify(request.body, headers)).toThrow();
      // One document per delivery, its events in order.
      expect(new Set(request.events.map((event) => event.document.name)).size).toBe(1);
    }
    const log = await deliveryLog(shared.server, tenant, endpoint.id);
    expect(log.every((delivery) => delivery.status === 'delivered' && delivery.attempts === 1)).toBe(true);
    expect(log.flatMap((delivery) => delivery.eventIds).sort()).toEqual(committed.map((event) => event.id).sort());
    const metrics = await shared.server.metrics();
    expect(metrics.get('concord_webhook_deliveries_total{outcome="delivered"}')).toBeGreaterThanOrEqual(log.length);
    expect(metrics.get('concord_webhook_lag_seconds_count')).toBeGreaterThanOrEqual(log.length);
  });

  it('a receiver answering 500 (then 503 with Retry-After) before 200 gets everything, in order', async () => {
    const tenant = freshTenant();
    const hook = await receiver(({ index }) => (index < 3 ? 500 : index < 5 ? { status: 503, headers: { 'retry-after': '0' } } : 200));
    const endpoint = await register(shared.server, tenant, { url: hook.url });
    await edit(shared.server, tenant, ['a', 'b', 'c'], 5);
    await allReceived(shared.db, tenant, hook);
    expect(hook.requests.slice(0, 5).map((request) => request.status)).toEqual([500, 500, 500, 503, 503]);
    expectOrderPerDocument(hook.taken);
    const log = await deliveryLog(shared.server, tenant, endpoint.id);
    expect(log.some((delivery) => delivery.attempts > 1 && delivery.status === 'delivered')).toBe(true);
    // A retried delivery keeps its webhook-id: the receiver saw it refused and then taken.
    const retried = log.find((delivery) => delivery.attempts > 1)!;
    expect(hook.requests.filter((request) => request.headers['webhook-id'] === retried.id).map((request) => request.status).at(-1)).toBe(200);
  });

  it('a receiver that is down for a while gets everything in order once it is back', async () => {
    const tenant = freshTenant();
    const hook = await receiver();
    await hook.stop();
    const endpoint = await register(shared.server, tenant, { url: hook.url });
    await edit(shared.server, tenant, ['a', 'b'], 6);
    await waitFor(
      'retries against the closed port',
      async () => (await deliveryLog(shared.server, tenant, endpoint.id)).some((delivery) => delivery.attempts >= 2 && /ECONNREFUSED/.test(delivery.lastError ?? '')),
      WAIT_MS,
    );
    await hook.start();
    await allReceived(shared.db, tenant, hook);
    expectOrderPerDocument(hook.taken);
    // The receiver answers before the server records the answer: the last deliveries are marked a moment later.
    await waitFor('every delivery marked delivered', async () => (await deliveryLog(shared.server, tenant, endpoint.id)).every((delivery) => delivery.status === 'delivered'), WAIT_MS);
  });

  it('a 400 dead-letters the delivery at once; it shows in the delivery log; the document goes on with its next delivery', async () => {
    const tenant = freshTenant();
    const hook = await receiver(({ index }) => (index === 0 ? 400 : 200));
    const endpoint = await register(shared.server, tenant, { url: hook.url });
    await edit(shared.server, tenant, ['a'], 1);
    const dead = await waitFor('a dead delivery', async () => (await deliveryLog(shared.server, tenant, endpoint.id)).find((delivery) => delivery.status === 'dead'), WAIT_MS);
    expect(dead).toMatchObject({ attempts: 1, lastStatus: 400 });
    expect(dead.lastError).toContain('HTTP 400');
    await edit(shared.server, tenant, ['a'], 1);
    await waitFor('the next delivery taken', () => hook.taken.length > 0, WAIT_MS);
    expect(hook.requests[0]!.status).toBe(400);
    expect(hook.taken.map((event) => event.id)).not.toContain(dead.eventIds[0]);
  });

  it('an endpoint whose deliveries keep dying is disabled; a replay enables it and sends the events again', async () => {
    const tenant = freshTenant();
    let refusing = true;
    const hook = await receiver(() => (refusing ? 410 : 200));
    const endpoint = await register(shared.server, tenant, { url: hook.url });
    // WEBHOOK_DISABLE_AFTER=3 in this suite: three documents, three dead deliveries.
    await edit(shared.server, tenant, ['a', 'b', 'c', 'd'], 1);
    const adminToken = await admin(tenant);
    const disabled = await waitFor(
      'the endpoint disabled',
      async () => (await api(shared.server.httpUrl, adminToken, 'GET', '/api/webhooks')).body.endpoints.find((listed: any) => listed.id === endpoint.id && !listed.enabled),
      WAIT_MS,
    );
    expect(disabled.disabledReason).toMatch(/3 deliveries in a row dead-lettered/);
    expect(hook.requests.length).toBeGreaterThanOrEqual(3);

    refusing = false;
    const replayed = await api(shared.server.httpUrl, adminToken, 'POST', `/api/webhooks/${endpoint.id}/replay`, { after: 0 });
    expect(replayed.status).toBe(200);
    expect(replayed.body).toMatchObject({ id: endpoint.id, enabled: true, disabledReason: null });
    await allReceived(shared.db, tenant, hook);
    expectOrderPerDocument(hook.taken);
  });

  it('an endpoint with types gets only those; the others are passed over', async () => {
    const tenant = freshTenant();
    const hook = await receiver();
    const endpoint = await register(shared.server, tenant, { url: hook.url, types: ['comment.added'] });
    expect(endpoint.types).toEqual(['comment.added']);
    await edit(shared.server, tenant, ['a', 'b'], 3);
    const committed = await allReceived(shared.db, tenant, hook, ['comment.added']);
    expect(committed.length).toBe(2);
    expect(hook.taken.map((event) => event.type)).toEqual(['comment.added', 'comment.added']);
  });

  it('only admins manage webhooks; the secret is shown only at registration; bad input is a 400', async () => {
    const tenant = freshTenant();
    const editor = await token({ tenant, sub: 'ed', role: 'editor' });
    expect((await api(shared.server.httpUrl, editor, 'POST', '/api/webhooks', { url: 'https://example.com/hook' })).status).toBe(403);
    expect((await api(shared.server.httpUrl, editor, 'GET', '/api/webhooks')).status).toBe(403);

    const endpoint = await register(shared.server, tenant, { url: 'http://127.0.0.1:9/hook' });
    const adminToken = await admin(tenant);
    const listed = await api(shared.server.httpUrl, adminToken, 'GET', '/api/webhooks');
    expect(listed.body.endpoints).toEqual([expect.objectContaining({ id: endpoint.id, url: endpoint.url, types: null, enabled: true })]);
    expect(JSON.stringify(listed.body)).not.toContain(endpoint.secret);
    // Another tenant's admin sees none of it.
    expect((await api(shared.server.httpUrl, await admin(freshTenant()), 'GET', `/api/webhooks/${endpoint.id}/deliveries`)).status).toBe(404);

    for (const body of [{ url: 'ftp://example.com/' }, { url: 'not a url' }, { url: `https://example.com/${'x'.repeat(2048)}` }, { url: 'https://example.com', types: ['no.such'] }, { url: 'https://example.com', extra: 1 }]) {
      const refused = await api(shared.server.httpUrl, adminToken, 'POST', '/api/webhooks', body);
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.body.error.code).toBe('bad-request');
    }
    expect((await api(shared.server.httpUrl, adminToken, 'POST', `/api/webhooks/${endpoint.id}/replay`, { after: -1 })).status).toBe(400);

    expect((await fetch(`${shared.server.httpUrl}/api/webhooks/${endpoint.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${adminToken}` } })).status).toBe(204);
    expect((await api(shared.server.httpUrl, adminToken, 'GET', '/api/webhooks')).body.endpoints).toEqual([]);
    expect((await api(shared.server.httpUrl, adminToken, 'GET', `/api/webhooks/${endpoint.id}/deliveries`)).status).toBe(404);
  });
});

describe('webhooks: server-side request forgery', () => {
  const suite = serverForSuite();

  it.each(['http://127.0.0.1/hook', 'http://10.1.2.3/hook', 'http://169.254.169.254/latest', 'http://[::1]/hook', 'http://[::ffff:127.0.0.1]/hook', 'http://100.64.0.1/', 'http://[fd00::1]/', 'http://localhost:8080/hook'])(
    'an endpoint at %s is refused at registration',
    async (url) => {
      const response = await api(suite.server.httpUrl, await admin(freshTenant()), 'POST', '/api/webhooks', { url });
      expect(response.status).toBe(400);
      expect(response.body.error.code).toBe('bad-webhook-url');
    },
  );

  it('a delivery to a name that resolves to a private address is refused when it is sent (no connection made)', async () => {
    const hook = await new Receiver().start();
    try {
      const attempt = await sendOnce(new URL(`http://localhost:${hook.port}/hook`), {}, '{"events":[]}', { timeoutMs: 5_000, allowPrivate: false });
      expect(attempt).toMatchObject({ outcome: 'failed', status: null });
      expect(hook.requests).toEqual([]);
      // Allowed, the same request arrives.
      expect(await sendOnce(new URL(`http://localhost:${hook.port}/hook`), {}, '{"events":[]}', { timeoutMs: 5_000, allowPrivate: true })).toMatchObject({ outcome: 'delivered' });
    } finally {
      await hook.stop();
    }
  });
});

describe('webhooks: an endpoint with WEBHOOK_MAX_PENDING deliveries waiting', () => {
  const suite = serverForSuite({ ...webhookEnv, WEBHOOK_MAX_PENDING: '1', WEBHOOK_RETRY_SCHEDULE: Array(200).fill('0.05').join(',') });
  const cleanups = perTestCleanups();

  it('claims no more events until the backlog drains, then gets them all', async () => {
    let answer = 503;
    const hook = await new Receiver(() => answer).start();
    cleanups.later(() => hook.stop());
    const tenant = freshTenant();
    const endpoint = await register(suite.server, tenant, { url: hook.url });
    await edit(suite.server, tenant, ['a'], 1);
    const first = await waitFor('the first delivery retried', async () => (await deliveryLog(suite.server, tenant, endpoint.id)).find((delivery) => delivery.attempts >= 1), WAIT_MS);
    await edit(suite.server, tenant, ['b', 'c'], 1);
    // Retries go on after b and c committed, and each pass of the dispatcher would have claimed them: it did not.
    const later = await waitFor(
      'more retries',
      async () => {
        const log = await deliveryLog(suite.server, tenant, endpoint.id);
        return log.find((delivery) => delivery.id === first.id && delivery.attempts >= first.attempts + 5) && log;
      },
      WAIT_MS,
    );
    expect(later.map((delivery) => delivery.id)).toEqual([first.id]);

    answer = 200;
    await waitFor('every document\'s events', () => new Set(hook.taken.map((event) => event.document.name)).size === 3, WAIT_MS);
    expectOrderPerDocument(hook.taken);
  });
});

describe('webhooks across a crash', () => {
  const cleanups = perTestCleanups();

  it('SIGKILL of the server during deliveries loses no event: the receiver\'s set of event ids is the committed set', async () => {
    const storage = await createReadableStorage();
    cleanups.later(() => storage.drop());
    // A slow receiver, so that the kill lands while deliveries are under way.
    const hook = await new Receiver(() => ({ status: 200, delayMs: 100 })).start();
    cleanups.later(() => hook.stop());
    const server = cleanups.track(await new ServerProcess({ ...storage.env, ...webhookEnv, INSTANCE_ID: 'crashing' }).start());
    const db = await openTestDatabase(storage);
    cleanups.later(() => db.close());
    const tenant = freshTenant();
    await register(server, tenant, { url: hook.url });
    await edit(server, tenant, ['a', 'b', 'c', 'd'], 10);
    const committed = await committedEvents(db, tenant);
    await waitFor('deliveries under way', () => hook.requests.length >= 2, WAIT_MS);
    await server.stop('SIGKILL');
    await server.start();

    await allReceived(db, tenant, hook);
    expect(new Set(hook.taken.map((event) => event.id))).toEqual(new Set(committed.map((event) => event.id)));
    expectOrderPerDocument(hook.taken);
  });
});

describe.skipIf(!postgresUrl)(postgresTitle('webhooks with a runtime role that owns nothing'), () => {
  const cleanups = perTestCleanups();

  it('retries come due through the poll, which reads across tenants as the MIGRATION_DATABASE_URL owner', async () => {
    const storage = await createStorage('postgres');
    cleanups.later(() => storage.drop());
    const ownerUrl = storage.databaseUrl!;
    const role = `concord_hooks_${randomBytes(4).toString('hex')}`;
    const owner = new pg.Client({ connectionString: ownerUrl });
    await owner.connect();
    cleanups.later(async () => {
      await owner.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
      await owner.end();
    });
    await owner.query(`CREATE ROLE ${role} LOGIN PASSWORD 'hooks-secret'`);
    await new ServerProcess(storage.env).start().then((migrated) => migrated.stop());
    await owner.query(`GRANT concord_app TO ${role}`);
    const runtimeUrl = new URL(ownerUrl);
    runtimeUrl.username = role;
    runtimeUrl.password = 'hooks-secret';
    const server = cleanups.track(await new ServerProcess({ ...storage.env, ...webhookEnv, DATABASE_URL: runtimeUrl.toString(), MIGRATION_DATABASE_URL: ownerUrl }).start());

    // The first attempt fails: the worker ends with nothing due, and only the poll brings the retry back.
    const hook = await new Receiver(({ index }) => (index === 0 ? 500 : 200)).start();
    cleanups.later(() => hook.stop());
    const tenant = freshTenant();
    await register(server, tenant, { url: hook.url });
    await edit(server, tenant, ['a'], 1);
    await waitFor('the retried delivery taken', () => hook.taken.length > 0, WAIT_MS);
    expect(hook.requests.map((request) => request.status)).toEqual([500, 200]);
  });
});

describe.skipIf(!postgresUrl)(postgresTitle('webhooks on two instances'), () => {
  const { start } = clusterFixture();

  it('two instances on one database deliver each event to the endpoint exactly once', async () => {
    const { servers, storage } = await start([webhookEnv, webhookEnv]);
    const [one, two] = servers as [ServerProcess, ServerProcess];
    const db = await openTestDatabase(storage);
    try {
      const hook = await new Receiver().start();
      try {
        const tenant = freshTenant();
        await register(one, tenant, { url: hook.url });
        await Promise.all([edit(one, tenant, ['a', 'b'], 8), edit(two, tenant, ['c', 'a'], 8)]);
        const committed = await allReceived(db, tenant, hook);
        expect(hook.taken.length).toBe(committed.length);
        expectOncePerEvent(hook.taken);
        expectOrderPerDocument(hook.taken);
        const deliveryIds = hook.requests.map((request) => request.headers['webhook-id']);
        expect(deliveryIds.length).toBe(new Set(deliveryIds).size);
      } finally {
        await hook.stop();
      }
    } finally {
      await db.close();
    }
  });
});

describe.skipIf(!postgresUrl)(postgresTitle('webhooks: a replay while deliveries die'), () => {
  let db: Database;
  suiteDatabase('postgres', '', (opened) => {
    db = opened;
  });

  it('a replay and the dead-lettering of one of the deliveries it replaces, at once, both commit', async () => {
    const tenant = 'replay-race';
    const endpoints = new WebhookEndpoints(db, true);
    const endpoint = await endpoints.register(tenant, { url: 'http://127.0.0.1:9/hook' });
    // The dead-lettering starts 0 – 3 ms after the replay: some rounds it lands while the replay holds the pending delivery.
    for (let round = 0; round < 40; round++) {
      const delivery = randomUUID();
      await db.transaction(tenant, (sql) => insertDeliveries(sql, endpoint.id, [{ id: delivery, name: `doc-${round}`, firstPosition: round + 1, lastPosition: round + 1, eventIds: [] }]));
      const deadLettered = new Promise((resolve) => setTimeout(resolve, round % 4)).then(() =>
        db.transaction(tenant, (sql) => recordDead(sql, endpoint.id, delivery, { status: 410, error: 'gone' }, 3)),
      );
      // A deadlock fails one of them.
      await Promise.all([endpoints.replay(tenant, endpoint.id, 0), deadLettered]);
    }
    const log = await db.transaction(tenant, (sql) => storedDeliveryLog(sql, endpoint.id, { before: 0, limit: 100 }));
    // Each is dead, by whichever came first: the attempt, or the replay (whose record the late attempt leaves).
    for (const row of log) {
      expect([{ status: 'dead', attempts: 1, error: 'gone' }, { status: 'dead', attempts: 0, error: 'replaced by a replay from position 0' }]).toContainEqual({ status: row.status, attempts: row.attempts, error: row.last_error });
    }
    expect(log).toHaveLength(40);
  });
});

describe.each(backends)('webhooks: deliveries a replay replaced, on $kind', ({ kind, reason }) => {
  let db: Database;
  suiteDatabase(kind, reason, (opened) => {
    db = opened;
  });

  it("keep the replay's record whatever their attempts' outcome; a death among them does not count against the endpoint", async ({ skip }) => {
    skip(!!reason, reason);
    const tenant = 'replaced';
    const endpoints = new WebhookEndpoints(db, true);
    const endpoint = await endpoints.register(tenant, { url: 'http://127.0.0.1:9/hook' });
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    await db.transaction(tenant, (sql) => insertDeliveries(sql, endpoint.id, ids.map((id, i) => ({ id, name: `doc-${i}`, firstPosition: i + 1, lastPosition: i + 1, eventIds: [] }))));
    await endpoints.replay(tenant, endpoint.id, 0);
    // The attempts under way as the replay came end after it: one dies (one death would disable the endpoint), one is to be retried, one delivered.
    const enabled = await db.transaction(tenant, (sql) => recordDead(sql, endpoint.id, ids[0]!, { status: 410, error: 'gone' }, 1));
    await db.transaction(tenant, (sql) => recordRetry(sql, ids[1]!, { status: 503, error: 'busy' }, new Date(Date.now() + 60_000)));
    await db.transaction(tenant, (sql) => recordDelivered(sql, endpoint.id, ids[2]!, { status: 200, error: null }));
    expect(enabled).toBe(true);
    expect((await endpoints.list(tenant)).map((listed) => listed.enabled)).toEqual([true]);
    const log = await db.transaction(tenant, (sql) => storedDeliveryLog(sql, endpoint.id, { before: 0, limit: 10 }));
    expect(log.map((row) => ({ status: row.status, attempts: row.attempts, error: row.last_error }))).toEqual(
      ids.map(() => ({ status: 'dead', attempts: 0, error: 'replaced by a replay from position 0' })),
    );

    // An attempt that ends after its endpoint was removed finds nothing to record: the endpoint is no longer enabled.
    await endpoints.remove(tenant, endpoint.id);
    expect(await db.transaction(tenant, (sql) => recordDead(sql, endpoint.id, ids[0]!, { status: 410, error: 'gone' }, 1))).toBe(false);
  });
});
