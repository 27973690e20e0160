import * as decoding from 'lib0/decoding';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { acknowledged, connect, goOffline, synced, waitFor, type Client } from './support/clients.ts';
import { clusterFixture } from './support/cluster.ts';
import { createStorage, postgresUrl, type TestStorage, postgresTitle } from './support/database.ts';
import { authFrame, awarenessFrame, awarenessUpdate, frame, syncFrame } from './support/frames.ts';
import { startServer, type ServerProcess } from './support/server.ts';
import { token } from './support/tokens.ts';

// Small bounds, so that each is reached in a few messages.
const AWARENESS_UPDATES_PER_SECOND = 2;
const AWARENESS_UPDATES_BURST = 5;
const AWARENESS_STATE_MAX_BYTES = 4096;
const MAX_DOCUMENTS_PER_SOCKET = 3;
const SYNC_REQUESTS_PER_WINDOW = 3;
const SYNC_REQUESTS_PER_USER_PER_WINDOW = 7;

const CLOSE = 7;
const SYNC_STEP_1 = 0;
const SYNC_STEP_2 = 1;

/** A WebSocket that speaks raw frames, and records what the server answers per document. */
class RawSocket {
  readonly ws: WebSocket;
  /** Stateless messages, parsed. */
  readonly stateless: Array<Record<string, unknown>> = [];
  readonly closeReasons: string[] = [];
  /** Byte lengths of the sync step 2 answers received. */
  readonly syncAnswers: number[] = [];
  bytesReceived = 0;
  private readonly authWaiters = new Map<string, (answer: string) => void>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer) => this.receive(new Uint8Array(data)));
  }

  static async open(url: string): Promise<RawSocket> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new RawSocket(ws);
  }

  /** Authenticates `document`: `authenticated`, or the refusal's reason. */
  async authenticate(document: string, userToken: string): Promise<string> {
    const answer = new Promise<string>((resolve) => this.authWaiters.set(document, resolve));
    this.ws.send(authFrame(document, userToken));
    return answer;
  }

  send(frames: Uint8Array | Uint8Array[]): void {
    for (const each of [frames].flat()) this.ws.send(each);
  }

  refusals(code: string): number {
    return this.stateless.filter((message) => message.type === 'concord:refused' && message.code === code).length;
  }

  close(): void {
    this.ws.close();
  }

  private receive(bytes: Uint8Array): void {
    this.bytesReceived += bytes.byteLength;
    const decoder = decoding.createDecoder(bytes);
    const address = decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    if (type === 2) {
      const kind = decoding.readVarUint(decoder);
      const answer = kind === 2 ? 'authenticated' : decoding.readVarString(decoder);
      this.authWaiters.get(address)?.(answer);
      this.authWaiters.delete(address);
    }
    if (type === 5) {
      const message = JSON.parse(decoding.readVarString(decoder));
      // Refusals only: every connection is also told the document's locks (docs/locks.md).
      if (message.type === 'concord:refused') this.stateless.push(message);
    }
    if (type === CLOSE) this.closeReasons.push(decoding.readVarString(decoder));
    if (type === 0 && decoding.readVarUint(decoder) === SYNC_STEP_2) this.syncAnswers.push(bytes.byteLength);
  }
}

/** The value of one series in /metrics (0 when absent). */
async function metric(server: ServerProcess, series: string): Promise<number> {
  return (await server.metrics()).get(series) ?? 0;
}

function limitsReached(server: ServerProcess, limit: string): Promise<number> {
  return metric(server, `concord_limits_reached_total{limit="${limit}"}`);
}

/** Every value of `field` the client has seen in `clientId`'s awareness state. */
function watchAwareness(client: Client, clientId: number, field: string): Set<unknown> {
  const seen = new Set<unknown>();
  client.provider.awareness!.on('change', () => {
    const state = client.provider.awareness!.getStates().get(clientId);
    if (state && field in state) seen.add(state[field]);
  });
  return seen;
}

/** One awareness state for `client`, its JSON exactly as given. */
function awarenessOf(document: string, client: number, clock: number, state: string): Uint8Array {
  return awarenessFrame(document, awarenessUpdate([{ client, clock, state }]));
}

/** One client's cursor moving `count` times (to 1, 2, … `count`), each move an awareness update of its own. */
function cursorMoves(document: string, client: number, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, index) => awarenessOf(document, client, index + 1, `{"cursor":${index + 1}}`));
}

/** A JSON object of exactly `bytes` bytes. */
function jsonOfSize(bytes: number): string {
  const json = `{"pad":"${'x'.repeat(bytes - 10)}"}`;
  expect(Buffer.byteLength(json)).toBe(bytes);
  return json;
}

describe('per-connection limits (one instance)', () => {
  let storage: TestStorage;
  let server: ServerProcess;

  beforeAll(async () => {
    storage = await createStorage();
    server = await startServer({
      ...storage.env,
      AWARENESS_UPDATES_PER_SECOND: String(AWARENESS_UPDATES_PER_SECOND),
      AWARENESS_UPDATES_BURST: String(AWARENESS_UPDATES_BURST),
      AWARENESS_STATE_MAX_BYTES: String(AWARENESS_STATE_MAX_BYTES),
      MAX_DOCUMENTS_PER_SOCKET: String(MAX_DOCUMENTS_PER_SOCKET),
      SYNC_REQUESTS_PER_WINDOW: String(SYNC_REQUESTS_PER_WINDOW),
      SYNC_REQUESTS_PER_USER_PER_WINDOW: String(SYNC_REQUESTS_PER_USER_PER_WINDOW),
    });
  });
  afterAll(async () => {
    await server?.stop();
    await storage?.drop();
  });

  /** A viewer's provider watching `name`, and a raw socket of `sender`'s authenticated on it. */
  async function watchedRawSocket(name: string, sender: string): Promise<{ observer: Client; raw: RawSocket }> {
    const observer = connect(server.wsUrl, name, await token({ sub: 'olga', role: 'viewer' }));
    await synced(observer);
    const raw = await RawSocket.open(server.wsUrl);
    expect(await raw.authenticate(name, await token({ sub: sender }))).toBe('authenticated');
    return { observer, raw };
  }

  it('an awareness state over AWARENESS_STATE_MAX_BYTES is refused and never relayed; one at the bound is', async () => {
    const name = 'acme/quote/awareness-size';
    const { observer, raw } = await watchedRawSocket(name, 'mallory');
    const [atBound, overBound, marker] = [1_000_001, 1_000_002, 1_000_003];
    const seenAtBound = watchAwareness(observer, atBound, 'pad');

    raw.send([
      awarenessOf(name, atBound, 1, jsonOfSize(AWARENESS_STATE_MAX_BYTES)),
      awarenessOf(name, overBound, 1, jsonOfSize(AWARENESS_STATE_MAX_BYTES + 1)),
      awarenessOf(name, marker, 1, '{"marker":true}'),
    ]);

    // The marker was sent last, on the same connection: once it is here, whatever was relayed before it is too.
    await waitFor('the marker', () => observer.provider.awareness!.getStates().get(marker));
    expect(seenAtBound.size).toBe(1);
    expect(observer.provider.awareness!.getStates().has(overBound)).toBe(false);
    expect(raw.refusals('rate-limited')).toBe(1);
    expect(raw.stateless[0]!.message).toContain('AWARENESS_STATE_MAX_BYTES');
    expect(await limitsReached(server, 'AWARENESS_STATE_MAX_BYTES')).toBe(1);
    raw.close();
    observer.provider.destroy();
  });

  it('a flood of awareness updates is cut at the rate and burst: the observer receives at most that budget, and the latest update', async () => {
    const name = 'acme/quote/awareness-flood';
    const { observer, raw } = await watchedRawSocket(name, 'mallory');
    // Each update is for a client id of its own: Hocuspocus relays the latest state per client id, so none can hide another.
    const firstId = 2_000_000;
    const seen = new Set<number>();
    observer.provider.awareness!.on('change', ({ added }: { added: number[] }) => added.forEach((id) => seen.add(id)));
    let sent = 0;
    const updates = (count: number) => Array.from({ length: count }, () => awarenessOf(name, firstId + ++sent, 1, '{"flood":true}'));
    const started = Date.now();

    // Within the budget (one step of the rate, and the burst): every update is taken, none refused.
    const budget = 1 + AWARENESS_UPDATES_BURST;
    raw.send(updates(budget));
    await waitFor('every update within the budget', () => seen.has(firstId + budget));
    expect(raw.refusals('rate-limited')).toBe(0);
    expect(await limitsReached(server, 'AWARENESS_UPDATES_PER_SECOND')).toBe(0);

    // The flood, then a sync request: its answer comes once every update before it was handled.
    const flood = 2_000;
    raw.send([...updates(flood), syncFrame(name, SYNC_STEP_1, Y.encodeStateVector(new Y.Doc()))]);
    await waitFor('the answer after the flood', () => raw.syncAnswers.length === 1, 30_000);
    // The flood's last update was held, and goes once the rate allows.
    await waitFor('the latest update of the flood', () => seen.has(firstId + sent), 5_000);
    const elapsedSeconds = (Date.now() - started) / 1000;
    // A marker from another connection, sent now, reaches the observer after every relayed update of the flood.
    const other = connect(server.wsUrl, name, await token({ sub: 'bea', role: 'viewer' }));
    await synced(other);
    other.provider.awareness!.setLocalStateField('marker', true);
    await waitFor('the marker', () => observer.provider.awareness!.getStates().get(other.doc.clientID)?.marker);

    // The rate allows one update per 1/AWARENESS_UPDATES_PER_SECOND s and the burst comes back every 10 s; nothing more can have come through.
    const allowed = Math.ceil(elapsedSeconds * AWARENESS_UPDATES_PER_SECOND) + 1 + AWARENESS_UPDATES_BURST * Math.floor(elapsedSeconds / 10);
    const relayedFromFlood = [...seen].filter((id) => id > firstId + budget && id <= firstId + sent).length;
    expect(relayedFromFlood).toBeLessThanOrEqual(allowed);
    expect(allowed).toBeLessThan(flood / 10);
    expect(raw.refusals('rate-limited')).toBeGreaterThanOrEqual(1);
    expect(raw.stateless.at(-1)!.message).toContain('AWARENESS_UPDATES_PER_SECOND');
    // Told at most once per second; every update dropped counted (the latest was held, not dropped).
    expect(raw.refusals('rate-limited')).toBeLessThanOrEqual(Math.ceil(elapsedSeconds) + 1);
    expect(await limitsReached(server, 'AWARENESS_UPDATES_PER_SECOND')).toBe(flood - relayedFromFlood);
    raw.close();
    other.provider.destroy();
    observer.provider.destroy();
  });

  it('a cursor moving faster than the rate: the others see where it stops, and past the burst moves are held from the first step of the rate', async () => {
    const name = 'acme/quote/awareness-cursor';
    const { observer, raw } = await watchedRawSocket(name, 'alice');
    const clientId = 3_000_000;
    const seen = watchAwareness(observer, clientId, 'cursor');
    const droppedBefore = await limitsReached(server, 'AWARENESS_UPDATES_PER_SECOND');
    // One client's moves, all at once, as a provider sends them while a selection is dragged.
    const moves = 20;
    raw.send(cursorMoves(name, clientId, moves));

    await waitFor('the last position', () => seen.has(moves), 5_000);
    // One step of the rate and the burst went at once (a rate counted per whole second would have let
    // AWARENESS_UPDATES_PER_SECOND through at once); the moves after them were dropped but the last, held until the next step.
    expect(await limitsReached(server, 'AWARENESS_UPDATES_PER_SECOND')).toBe(droppedBefore + moves - 1 - AWARENESS_UPDATES_BURST - 1);
    expect(raw.refusals('rate-limited')).toBe(1);
    raw.close();
    observer.provider.destroy();
  });

  it('two connections to one document on one socket are held apart: the others see where each cursor stops', async () => {
    const name = 'acme/quote/awareness-sessions';
    const observer = connect(server.wsUrl, name, await token({ sub: 'olga', role: 'viewer' }));
    await synced(observer);
    const raw = await RawSocket.open(server.wsUrl);
    // Each connection's address names its session, as session-aware providers sharing a socket do.
    const sessions = [`${name}\0first`, `${name}\0second`];
    for (const session of sessions) expect(await raw.authenticate(session, await token({ sub: 'alice' }))).toBe('authenticated');
    const clients = [3_000_002, 3_000_003];
    const seen = clients.map((client) => watchAwareness(observer, client, 'cursor'));
    const moves = 20;
    const [first, second] = sessions.map((session, index) => cursorMoves(session, clients[index]!, moves));
    raw.send(first!.flatMap((move, index) => [move, second![index]!]));

    await waitFor('both last positions', () => seen.every((positions) => positions.has(moves)), 5_000);
    raw.close();
    observer.provider.destroy();
  });

  it('a held cursor move of a connection that closes is never applied: the others do not see the client again', async () => {
    const name = 'acme/quote/awareness-closed';
    const { observer, raw } = await watchedRawSocket(name, 'alice');
    const clientId = 3_000_001;
    const moves = 20;
    raw.send(cursorMoves(name, clientId, moves));
    await waitFor('the moves within the budget', () => observer.provider.awareness!.getStates().get(clientId)?.cursor === 1 + AWARENESS_UPDATES_BURST);
    raw.close();
    await waitFor('the client gone', () => !observer.provider.awareness!.getStates().has(clientId));
    // Longer than the rate's step, after which the last move would have gone.
    await new Promise((resolve) => setTimeout(resolve, (3 * 1000) / AWARENESS_UPDATES_PER_SECOND));
    expect(observer.provider.awareness!.getStates().has(clientId)).toBe(false);
    observer.provider.destroy();
  });

  it('sync requests past SYNC_REQUESTS_PER_WINDOW are not answered: a viewer asking for the whole document again and again receives it at most that often', async () => {
    const name = 'acme/quote/sync-amplification';
    const editor = connect(server.wsUrl, name, await token({ sub: 'alice' }));
    await synced(editor);
    editor.doc.getMap('quote').set('title', 'x'.repeat(50_000));
    await acknowledged(editor);
    const documentBytes = Y.encodeStateAsUpdate(editor.doc).byteLength;

    const raw = await RawSocket.open(server.wsUrl);
    expect(await raw.authenticate(name, await token({ sub: 'victor', role: 'viewer' }))).toBe('authenticated');
    const requests = 200;
    const emptyStateVector = Y.encodeStateVector(new Y.Doc());
    raw.send(Array.from({ length: requests }, () => syncFrame(name, SYNC_STEP_1, emptyStateVector)));
    await waitFor('the document closed', () => raw.closeReasons.includes('rate-limited'), 30_000);
    // Frames are handled in order: once another document's authentication is answered, every request was handled.
    expect(await raw.authenticate('acme/quote/sync-amplification-other', await token({ sub: 'victor', role: 'viewer' }))).toBe('authenticated');

    expect(raw.syncAnswers).toHaveLength(SYNC_REQUESTS_PER_WINDOW);
    for (const answer of raw.syncAnswers) expect(answer).toBeGreaterThan(documentBytes);
    expect(raw.bytesReceived).toBeLessThan((SYNC_REQUESTS_PER_WINDOW + 1) * documentBytes);
    expect(raw.refusals('rate-limited')).toBe(1);
    expect(raw.stateless[0]!.message).toContain('SYNC_REQUESTS_PER_WINDOW');
    expect(await limitsReached(server, 'SYNC_REQUESTS_PER_WINDOW')).toBe(1);
    // Refused before Hocuspocus handles it: no plain-text line beside the JSON log.
    expect(server.logs.split('\n').filter((line) => line.trim() && !line.startsWith('{'))).toEqual([]);
    // The editor's session is untouched.
    editor.doc.getMap('quote').set('title', 'after');
    await acknowledged(editor);
    raw.close();
    editor.provider.destroy();
  });

  it('sync requests past SYNC_REQUESTS_PER_USER_PER_WINDOW over all of a user\'s sockets are not answered; another user\'s are', async () => {
    const name = 'acme/quote/sync-per-user';
    const emptyStateVector = Y.encodeStateVector(new Y.Doc());
    const before = await limitsReached(server, 'SYNC_REQUESTS_PER_USER_PER_WINDOW');
    /** A socket of `sub` on the document, sending `count` sync requests; resolves once they are all handled. */
    const requestOnNewSocket = async (sub: string, count: number) => {
      const raw = await RawSocket.open(server.wsUrl);
      expect(await raw.authenticate(name, await token({ sub, role: 'viewer' }))).toBe('authenticated');
      raw.send(Array.from({ length: count }, () => syncFrame(name, SYNC_STEP_1, emptyStateVector)));
      // Frames are handled in order: once another document's authentication is answered, every request was handled.
      expect(await raw.authenticate(`${name}-after`, await token({ sub, role: 'viewer' }))).toBe('authenticated');
      return raw;
    };
    // Requests queued behind an authentication that is refused are never answered: they cost nothing.
    const refusedAuth = await RawSocket.open(server.wsUrl);
    const elsewhere = await token({ sub: 'ulla', role: 'viewer', docs: ['quote/elsewhere'] });
    const answer = refusedAuth.authenticate(name, elsewhere);
    refusedAuth.send(Array.from({ length: SYNC_REQUESTS_PER_WINDOW }, () => syncFrame(name, SYNC_STEP_1, emptyStateVector)));
    expect(await answer).toBe('not-allowed');
    refusedAuth.close();
    // Each socket stays within SYNC_REQUESTS_PER_WINDOW; together they pass the user's budget.
    const sockets = [];
    for (let i = 0; i < 4; i++) sockets.push(await requestOnNewSocket('ulla', SYNC_REQUESTS_PER_WINDOW));
    const answered = sockets.map((_, i) => Math.min(SYNC_REQUESTS_PER_WINDOW, Math.max(0, SYNC_REQUESTS_PER_USER_PER_WINDOW - i * SYNC_REQUESTS_PER_WINDOW)));
    expect(sockets.map((raw) => raw.syncAnswers.length)).toEqual(answered);
    // A socket refused once has its document closed: it asks no more.
    const refused = answered.map((count): number => (count < SYNC_REQUESTS_PER_WINDOW ? 1 : 0));
    expect(sockets.map((raw) => raw.refusals('rate-limited'))).toEqual(refused);
    expect(sockets[refused.indexOf(1)]!.stateless[0]!.message).toContain('SYNC_REQUESTS_PER_USER_PER_WINDOW');
    expect(await limitsReached(server, 'SYNC_REQUESTS_PER_USER_PER_WINDOW')).toBe(before + refused.reduce((sum, count) => sum + count, 0));
    // Hocuspocus answers a request addressed to `<name>\0<anything>` from the document's connection: it spends the same budget.
    const suffixed = await requestOnNewSocket('ulla', 0);
    suffixed.send(syncFrame(`${name}\0again`, SYNC_STEP_1, emptyStateVector));
    expect(await suffixed.authenticate(`${name}-last`, await token({ sub: 'ulla', role: 'viewer' }))).toBe('authenticated');
    expect(suffixed.syncAnswers).toEqual([]);
    expect(await limitsReached(server, 'SYNC_REQUESTS_PER_USER_PER_WINDOW')).toBe(before + refused.reduce((sum, count) => sum + count, 0) + 1);
    const other = await requestOnNewSocket('otto', SYNC_REQUESTS_PER_WINDOW);
    expect(other.syncAnswers).toHaveLength(SYNC_REQUESTS_PER_WINDOW);
    for (const raw of [...sockets, suffixed, other]) raw.close();
  });

  it('a socket may open MAX_DOCUMENTS_PER_SOCKET documents, not one more, and one more once it closes one', async () => {
    const raw = await RawSocket.open(server.wsUrl);
    const userToken = await token({ sub: 'sam', role: 'viewer' });
    const names = Array.from({ length: MAX_DOCUMENTS_PER_SOCKET + 1 }, (_, index) => `acme/quote/per-socket-${index}`);
    for (const name of names.slice(0, MAX_DOCUMENTS_PER_SOCKET)) expect(await raw.authenticate(name, userToken)).toBe('authenticated');
    const extra = names.at(-1)!;
    expect(await raw.authenticate(extra, userToken)).toBe('rate-limited');
    expect(await limitsReached(server, 'MAX_DOCUMENTS_PER_SOCKET')).toBe(1);
    // Another socket of the same user is not affected.
    const second = await RawSocket.open(server.wsUrl);
    expect(await second.authenticate(extra, userToken)).toBe('authenticated');
    second.close();

    raw.send(frame(names[0]!, CLOSE));
    await waitFor('a place on the socket', async () => (await raw.authenticate(extra, userToken)) === 'authenticated');
    raw.close();
  });
});

/** Opens `name` for `sub`: the synced client, or the reason it was refused. */
async function attempt(fixture: ReturnType<typeof clusterFixture>, server: ServerProcess, name: string, sub: string, tenant = 'acme'): Promise<Client | string> {
  const client = fixture.connect(server, name, await token({ sub, tenant, role: 'viewer' }));
  const refused = new Promise<string>((resolve) => client.provider.on('authenticationFailed', ({ reason }: { reason: string }) => resolve(reason)));
  const outcome = await Promise.race([synced(client, 30_000).then(() => client), refused]);
  if (typeof outcome === 'string') client.provider.destroy();
  return outcome;
}


describe.skipIf(!postgresUrl)(postgresTitle('connections per user and per tenant hold for the whole cluster'), () => {
  const fixture = clusterFixture();

  it('MAX_CONNECTIONS_PER_USER counts both instances; a place frees up when a connection closes and when its instance is killed', async () => {
    const { servers } = await fixture.start([{ MAX_CONNECTIONS_PER_USER: '2' }, { MAX_CONNECTIONS_PER_USER: '2' }]);
    const [first, second] = servers as [ServerProcess, ServerProcess];
    const onFirst = await attempt(fixture, first, 'acme/quote/u-1', 'alice');
    const onSecond = await attempt(fixture, second, 'acme/quote/u-2', 'alice');
    expect(typeof onFirst).not.toBe('string');
    expect(typeof onSecond).not.toBe('string');
    expect(await attempt(fixture, second, 'acme/quote/u-3', 'alice')).toBe('rate-limited');
    expect(await attempt(fixture, first, 'acme/quote/u-3', 'alice')).toBe('rate-limited');
    expect(await limitsReached(first, 'MAX_CONNECTIONS_PER_USER')).toBe(1);
    expect(await limitsReached(second, 'MAX_CONNECTIONS_PER_USER')).toBe(1);
    // Per user: another user of the tenant is not affected.
    expect(typeof (await attempt(fixture, second, 'acme/quote/u-3', 'bob'))).not.toBe('string');

    (onSecond as Client).provider.destroy();
    const third = await waitFor('a place after a close', async () => {
      const outcome = await attempt(fixture, second, 'acme/quote/u-3', 'alice');
      return typeof outcome === 'string' ? undefined : outcome;
    }, 30_000);
    expect(third.provider.isSynced).toBe(true);
    expect(await attempt(fixture, second, 'acme/quote/u-4', 'alice')).toBe('rate-limited');

    // The killed instance cannot release its connection: it stops counting when its renewals stop (TTL).
    await first.stop('SIGKILL');
    const fourth = await waitFor('a place after the instance was killed', async () => {
      const outcome = await attempt(fixture, second, 'acme/quote/u-4', 'alice');
      return typeof outcome === 'string' ? undefined : outcome;
    }, 60_000);
    expect(fourth.provider.isSynced).toBe(true);
    expect(await attempt(fixture, second, 'acme/quote/u-5', 'alice')).toBe('rate-limited');
  });

  it('while Redis is away each instance holds the bound on its own connections, and puts them back once Redis answers', async () => {
    const env = { MAX_CONNECTIONS_PER_USER: '2' };
    const { servers, redis } = await fixture.start([env, env]);
    const [first] = servers as [ServerProcess, ServerProcess];
    expect(typeof (await attempt(fixture, first, 'acme/quote/r-1', 'alice'))).not.toBe('string');
    await redis.stop();
    expect(typeof (await attempt(fixture, first, 'acme/quote/r-2', 'alice'))).not.toBe('string');
    expect(await attempt(fixture, first, 'acme/quote/r-3', 'alice')).toBe('rate-limited');

    // A fresh Redis knows nothing: the instance's renewal puts its two connections back.
    await redis.start();
    const client = new Redis(redis.url);
    fixture.defer(() => client.disconnect());
    await waitFor('the connections back in Redis', async () => (await client.zcard('concord:connections:{acme}:alice')) === 2, 30_000);
    await waitFor('the second instance on Redis again', async () => (await servers[1]!.get('/readyz')).status === 200, 30_000);
    expect(await attempt(fixture, servers[1]!, 'acme/quote/r-3', 'alice')).toBe('rate-limited');
  });

  it('MAX_CONNECTIONS_PER_TENANT counts every user of the tenant on both instances, and only that tenant', async () => {
    const env = { MAX_CONNECTIONS_PER_TENANT: '3' };
    const [first, second] = (await fixture.start([env, env])).servers as [ServerProcess, ServerProcess];
    for (const [server, sub] of [[first, 'alice'], [second, 'bob'], [first, 'carol']] as const) {
      expect(typeof (await attempt(fixture, server, `acme/quote/t-${sub}`, sub))).not.toBe('string');
    }
    expect(await attempt(fixture, second, 'acme/quote/t-dave', 'dave')).toBe('rate-limited');
    expect(await limitsReached(second, 'MAX_CONNECTIONS_PER_TENANT')).toBe(1);
    expect(typeof (await attempt(fixture, second, 'globex/quote/t-erin', 'erin', 'globex'))).not.toBe('string');
  });
});

describe('HocuspocusProvider within the defaults', () => {
  let storage: TestStorage;
  let server: ServerProcess;

  beforeAll(async () => {
    storage = await createStorage();
    server = await startServer(storage.env);
  });
  afterAll(async () => {
    await server?.stop();
    await storage?.drop();
  });

  it('a provider that reconnects, moves its cursor every 100 ms and edits never meets a limit', async () => {
    const name = 'acme/quote/within-defaults';
    const observer = connect(server.wsUrl, name, await token({ sub: 'olga', role: 'viewer' }));
    await synced(observer);
    const client = connect(server.wsUrl, name, await token({ sub: 'alice' }));
    await synced(client);
    const seen = watchAwareness(observer, client.doc.clientID, 'cursor');
    for (let round = 0; round < 3; round++) {
      for (let move = 1; move <= 10; move++) {
        client.provider.awareness!.setLocalStateField('cursor', round * 10 + move);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      client.doc.getMap('quote').set('title', `round ${round}`);
      await acknowledged(client);
      await goOffline(client);
      await client.provider.connect();
      await synced(client);
    }
    await waitFor('the last cursor', () => seen.has(30));
    expect(client.stateless.filter((message) => message.type === 'concord:refused')).toEqual([]);
    const series = await server.metrics();
    expect([...series.keys()].filter((key) => key.startsWith('concord_limits_reached_total{'))).toEqual([]);
    client.provider.destroy();
    observer.provider.destroy();
  });
});
