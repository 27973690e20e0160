import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterFixture } from './support/cluster.ts';
import { backends, createStorage, postgresUrl, type TestStorage, postgresTitle } from './support/database.ts';
import { RedisProcess } from './support/redis.ts';
import { ServerProcess } from './support/server.ts';
import { TcpProxy } from './support/tcp-proxy.ts';
import { token } from './support/tokens.ts';

interface Answer {
  status: number;
  body: any;
  retryAfter: string | null;
}

/** One HTTP request to `server`, with a bearer token when given; `body` is sent as it is. */
async function request(server: ServerProcess, path: string, options: { token?: string; method?: string; body?: string; type?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.type) headers['content-type'] = options.type;
  // A request left unanswered fails here, under its path, rather than at the test's timeout.
  const response = await fetch(server.httpUrl + path, { method: options.method ?? 'GET', headers, body: options.body, signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: await response.json(), retryAfter: response.headers.get('retry-after') };
}

describe.each(backends)('HTTP input on $kind', ({ kind, reason }) => {
  let storage: TestStorage;
  let server: ServerProcess;
  let admin: string;

  beforeAll(async () => {
    if (reason) return;
    storage = await createStorage(kind);
    server = await new ServerProcess(storage.env).start();
    admin = await token({ sub: 'ada', role: 'admin' });
    // A document with an update and an audit row, so every filter reaches a real query.
    const created = await request(server, '/api/documents/quote/q1', { token: admin, method: 'PATCH', type: 'application/json', body: JSON.stringify({ quote: { title: 'Pumps' } }) });
    expect(created.status).toBe(200);
  });
  afterAll(async () => {
    await server?.stop();
    await storage?.drop();
  });

  it('a NUL in a filter, a cursor or a token claim is a 400 (401 for the token) naming what is wrong, never a 500', async ({ skip }) => {
    skip(!!reason, reason);
    for (const filter of ['user', 'entity', 'field']) {
      const answer = await request(server, `/api/documents/quote/q1/changes?${filter}=a%00b`, { token: admin });
      expect(answer.status, filter).toBe(400);
      expect(answer.body.error.code).toBe('bad-request');
      expect(answer.body.error.message).toContain(`${filter}: contains NUL or a lone surrogate`);
    }
    const listed = await request(server, '/api/documents?after=quote%00', { token: admin });
    expect(listed.status).toBe(400);
    expect(listed.body.error.message).toContain('after: contains NUL');
    for (const patch of [{ notes: 'a\0b' }, { quote: { title: 'a\0b' } }, { lines: { add: [{ id: 'l\0' }] } }]) {
      const answer = await request(server, '/api/documents/quote/q1', { token: admin, method: 'PATCH', type: 'application/json', body: JSON.stringify(patch) });
      expect(answer.status, JSON.stringify(patch)).toBe(400);
      expect(answer.body.error.message).toContain('contains NUL or a lone surrogate');
    }
    expect((await request(server, '/api/documents/quote/q1', { token: admin })).body.content).toMatchObject({ quote: { title: 'Pumps' }, notes: '', lines: [] });
    const claim = await request(server, '/api/documents', { token: await token({ sub: 'ada', role: 'admin', docs: ['quote/q1\0'] }) });
    expect(claim.status).toBe(401);
    expect(claim.body.error.code).toBe('bad-token');
    // The same filters without the NUL are answered.
    const matching = await request(server, '/api/documents/quote/q1/changes?user=ada&entity=quote&field=title', { token: admin });
    expect(matching.status).toBe(200);
    expect(matching.body.changes).toHaveLength(1);
    expect((await request(server, '/api/documents?after=quote', { token: admin })).status).toBe(200);
    expect(server.logs).not.toMatch(/"code":"internal"/);
  });

  it('a time outside the years 0001-9999 (as written, or once its offset is applied) is a 400; the first and last moments Postgres holds are answered', async ({ skip }) => {
    skip(!!reason, reason);
    const outside = [
      'changes?since=0000-01-01T00:00:00Z',
      'changes?until=%2B10000-01-01T00:00:00Z',
      'versions?at=0000-06-01T00:00:00Z',
      'versions?at=%2B010000-01-01T00:00:00Z',
      // Inside as written; in UTC year 0 and year 10000.
      'changes?since=0001-01-01T00:30:00%2B01:00',
      'versions?at=9999-12-31T23:30:00-01:00',
    ];
    for (const query of outside) {
      const answer = await request(server, `/api/documents/quote/q1/${query}`, { token: admin });
      expect(answer.status, query).toBe(400);
      expect(answer.body.error.code).toBe('bad-request');
      expect(answer.body.error.message).toMatch(/is not valid: (since|until|at): /);
    }
    const first = await request(server, '/api/documents/quote/q1/changes?since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59.999Z', { token: admin });
    expect(first.status).toBe(200);
    expect(first.body.changes).toHaveLength(1);
    const before = await request(server, '/api/documents/quote/q1/versions?at=0001-01-01T00:00:00Z', { token: admin });
    expect(before.status).toBe(200);
    expect(before.body.version).toBe(0);
    const after = await request(server, '/api/documents/quote/q1/versions?at=9999-12-31T23:59:59Z', { token: admin });
    expect(after.status).toBe(200);
    expect(after.body.version).toBe(1);
    expect(server.logs).not.toMatch(/"code":"internal"/);
  });

  it('a body not sent as JSON is refused with 415 unsupported-media-type and changes nothing; application/json (with a charset) is taken', async ({ skip }) => {
    skip(!!reason, reason);
    const body = JSON.stringify({ quote: { title: 'Sent as text' } });
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', undefined]) {
      const answer = await request(server, '/api/documents/quote/q1', { token: admin, method: 'PATCH', type, body });
      expect(answer.status, String(type)).toBe(415);
      expect(answer.body.error.code).toBe('unsupported-media-type');
      expect(answer.body.error.message).toContain('Content-Type: application/json');
    }
    const restore = await request(server, '/api/documents/quote/q1/restore', { token: admin, method: 'POST', type: 'text/plain', body: JSON.stringify({ version: 0 }) });
    expect(restore.status).toBe(415);
    expect((await request(server, '/api/documents/quote/q1', { token: admin })).body.content.quote.title).toBe('Pumps');
    const taken = await request(server, '/api/documents/quote/q1', { token: admin, method: 'PATCH', type: 'application/json; charset=utf-8', body });
    expect(taken.status).toBe(200);
    expect(taken.body.content.quote.title).toBe('Sent as text');
  });
});

const PER_USER = 4;
const PER_ADDRESS = 3;
const smallLimits = { HTTP_REQUESTS_PER_MINUTE: String(PER_USER), HTTP_ANONYMOUS_REQUESTS_PER_MINUTE: String(PER_ADDRESS) };

/**
 * Spends both budgets over `servers` in turn (request i goes to servers[i % n]):
 * every request up to each bound is answered, the next is 429 with Retry-After;
 * another user keeps their own budget; the probes and /metrics are never limited.
 */
async function checkRequestLimits(servers: ServerProcess[]) {
  const on = (index: number) => servers[index % servers.length]!;
  const alice = await token({ sub: 'alice', role: 'viewer' });
  for (let index = 0; index < PER_USER; index++) {
    expect((await request(on(index), '/api/documents/quote/limited/presence', { token: alice })).status).toBe(200);
  }
  const refused = await request(on(PER_USER), '/api/documents/quote/limited/presence', { token: alice });
  expect(refused.status).toBe(429);
  expect(refused.body.error.code).toBe('rate-limited');
  expect(refused.body.error.message).toContain('HTTP_REQUESTS_PER_MINUTE');
  expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number(refused.retryAfter)).toBeLessThanOrEqual(60);
  // A fresh token of the same user draws on the same budget; another user has their own.
  expect((await request(on(0), '/api/documents/quote/limited/presence', { token: await token({ sub: 'alice', role: 'viewer' }) })).status).toBe(429);
  expect((await request(on(1), '/api/documents/quote/limited/presence', { token: await token({ sub: 'bob', role: 'viewer' }) })).status).toBe(200);

  // Without a token or with a refused one: the address's budget.
  const anonymous = [undefined, 'not-a-token', await token({ sub: 'mallory', secret: 'another-secret-0123456789abcdefgh' })];
  for (const [index, bad] of anonymous.entries()) {
    expect((await request(on(index), '/api/documents/quote/limited', { token: bad })).status).toBe(401);
  }
  const anonymousRefused = await request(on(PER_ADDRESS), '/api/documents/quote/limited');
  expect(anonymousRefused.status).toBe(429);
  expect(anonymousRefused.body.error.message).toContain('HTTP_ANONYMOUS_REQUESTS_PER_MINUTE');
  expect(Number(anonymousRefused.retryAfter)).toBeGreaterThanOrEqual(1);

  for (const server of servers) {
    for (let index = 0; index < PER_ADDRESS + 2; index++) {
      for (const path of ['/healthz', '/readyz', '/metrics']) expect((await server.get(path)).status, path).toBe(200);
    }
  }
  const counted = async (series: string) => (await Promise.all(servers.map(async (server) => (await server.metrics()).get(series) ?? 0))).reduce((sum, value) => sum + value, 0);
  expect(await counted('concord_limits_reached_total{limit="HTTP_REQUESTS_PER_MINUTE"}')).toBe(2);
  expect(await counted('concord_limits_reached_total{limit="HTTP_ANONYMOUS_REQUESTS_PER_MINUTE"}')).toBe(1);
  expect(await counted('concord_refusals_total{code="rate-limited"}')).toBe(3);
}

describe('HTTP request limits', () => {
  let storage: TestStorage;
  let server: ServerProcess;

  beforeAll(async () => {
    storage = await createStorage('pglite');
    server = await new ServerProcess({ ...storage.env, ...smallLimits }).start();
  });
  afterAll(async () => {
    await server?.stop();
    await storage?.drop();
  });

  it('one instance (no Redis): each budget answers up to its bound and refuses the next with 429 and Retry-After', async () => {
    await checkRequestLimits([server]);
  });
});

const cluster = clusterFixture();

describe.skipIf(!postgresUrl)(postgresTitle('HTTP request limits across instances'), () => {
  it('two instances on one Redis share each budget: requests alternating between them are refused at the bound', async () => {
    const { servers } = await cluster.start([smallLimits, smallLimits]);
    await checkRequestLimits(servers);
  });
});

describe('HTTP request limits while Redis does not answer', () => {
  it('a request is answered on the instance\'s own budget, not held until Redis answers again; the bound still holds', async () => {
    const redis = await new RedisProcess().start();
    cluster.defer(() => redis.stop());
    // Redis behind a link the test can silence: its connection stays open, its answers stop.
    const link = await new TcpProxy({ host: '127.0.0.1', port: redis.port }).listen();
    cluster.defer(() => link.close());
    const server = await cluster.single({ ...smallLimits, REDIS_URL: `redis://127.0.0.1:${link.port}` });
    const alice = await token({ sub: 'alice', role: 'viewer' });
    const path = '/api/documents/quote/silent/presence';
    expect((await request(server, path, { token: alice })).status).toBe(200); // spent in Redis
    expect((await server.get('/readyz')).status).toBe(200);

    link.stall();
    // The instance's budget in memory is whole: Redis's spend is not known here.
    for (let index = 0; index < PER_USER; index++) expect((await request(server, path, { token: alice })).status).toBe(200);
    const refused = await request(server, path, { token: alice });
    expect(refused.status).toBe(429);
    expect(refused.body.error.message).toContain('HTTP_REQUESTS_PER_MINUTE');
  });
});
