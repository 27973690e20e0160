import { describe, expect, it } from 'vitest';
import type { Database } from '../src/db/database.ts';
import { acknowledged, connect, synced, waitFor, type Client } from './support/clients.ts';
import { perTestCleanups } from './support/cleanups.ts';
import { clusterFixture } from './support/cluster.ts';
import { createReadableStorage, postgresTitle, postgresUrl } from './support/database.ts';
import { addComment, api } from './support/documents.ts';
import { openTestDatabase, rowsOf } from './support/inspect.ts';
import { NatsProcess, StreamReader, type StreamMessage } from './support/nats.ts';
import { ServerProcess } from './support/server.ts';
import { token } from './support/tokens.ts';

const { later, track } = perTestCleanups();

interface CommittedEvent {
  id: string;
  position: string;
  name: string;
  seq_first: string;
  type: string;
}

/** A fresh database, a nats-server of its own, and a Concord server publishing to it. */
async function setUp(env: Record<string, string> = {}, nats = new NatsProcess()) {
  const storage = await createReadableStorage();
  later(() => storage.drop());
  await nats.start();
  later(() => nats.drop());
  const server = track(await new ServerProcess({ ...storage.env, NATS_URL: nats.url, EVENTS_POLL_MS: '100', ...env }).start());
  const db = await openTestDatabase(storage);
  later(() => db.close());
  return { storage, nats, server, db, reader: new StreamReader(nats) };
}

async function committedEvents(db: Database, tenants = ['acme']): Promise<CommittedEvent[]> {
  const rows = await Promise.all(tenants.map((tenant) => rowsOf<CommittedEvent>(db, tenant, 'SELECT id, position, name, seq_first, type FROM change_events ORDER BY position')));
  return rows.flat();
}

/** Waits until the stream holds every committed event, then answers both. */
async function allPublished(db: Database, reader: StreamReader, tenants?: string[], timeoutMs = 30_000) {
  let committed: CommittedEvent[] = [];
  let messages: StreamMessage[] = [];
  await waitFor(
    'every committed event on NATS',
    async () => {
      committed = await committedEvents(db, tenants);
      messages = await reader.read();
      const published = new Set(messages.map((message) => message.msgId));
      return committed.length > 0 && committed.every((event) => published.has(event.id));
    },
    timeoutMs,
  );
  return { committed, messages };
}

/** Once per event id, carrying it in Nats-Msg-Id and the payload, on its subject, and each document's events in seq and position order. */
function expectPublishedOnce(committed: CommittedEvent[], messages: StreamMessage[]): void {
  const ids = messages.map((message) => message.msgId);
  expect(new Set(ids).size).toBe(ids.length);
  expect(new Set(ids)).toEqual(new Set(committed.map((event) => event.id)));
  for (const { msgId, subject, event } of messages) {
    expect(event.id).toBe(msgId);
    expect(subject).toBe(`concord.${event.tenant}.${event.document.kind}.${event.document.id}.${event.type}`);
  }
  const byDocument = Map.groupBy(messages, (message) => message.event.document.name);
  for (const [name, published] of byDocument) {
    const positions = published.map((message) => message.event.position);
    expect(positions, name).toEqual([...positions].sort((a, b) => a - b));
    const seqs = published.map((message) => message.event.seq[0]);
    expect(seqs, name).toEqual([...seqs].sort((a, b) => a - b));
  }
}

async function editor(server: ServerProcess, name: string): Promise<Client> {
  const client = connect(server.wsUrl, name, await token({ sub: 'alice', role: 'editor' }));
  later(() => client.provider.destroy());
  await synced(client);
  return client;
}

async function readiness(server: ServerProcess): Promise<{ status: number; nats: string }> {
  const response = await server.get('/readyz');
  return { status: response.status, nats: ((await response.json()) as { checks: Record<string, string> }).checks.nats! };
}

describe('publishing change events to NATS JetStream', () => {
  it('publishes every acknowledged change once per event id, on its subject, in seq order per document', { timeout: 90_000 }, async () => {
    const { server, db, reader } = await setUp();
    const first = await editor(server, 'acme/quote/q-1');
    const second = await editor(server, 'acme/quote/q-2');
    for (let edit = 1; edit <= 40; edit++) {
      first.doc.getMap('quote').set('title', `first ${edit}`);
      second.doc.getMap('quote').set('title', `second ${edit}`);
    }
    first.doc.getMap('quote').set('status', 'sent');
    addComment(second.doc, { id: 'c1', body: 'Bob, Carol: look at this', mentions: ['bob', 'carol'] });
    await Promise.all([acknowledged(first), acknowledged(second)]);
    const admin = await token({ sub: 'ada', role: 'admin' });
    expect((await api(server.httpUrl, admin, 'PATCH', '/api/documents/quote/q-1', { quote: { title: 'from the API' } })).status).toBe(200);

    const { committed, messages } = await allPublished(db, reader);
    expectPublishedOnce(committed, messages);
    const types = new Set(messages.map((message) => message.event.type));
    for (const type of ['document.created', 'document.changed', 'status.changed', 'comment.added', 'comment.mentioned']) expect(types).toContain(type);
    const mentioned = messages.filter((message) => message.event.type === 'comment.mentioned').map((message) => message.subject);
    expect(mentioned).toEqual(['concord.acme.quote.q-2.comment.mentioned', 'concord.acme.quote.q-2.comment.mentioned']);
    const patched = messages.filter((message) => message.event.origin === 'api');
    expect(patched.map((message) => message.event)).toMatchObject([{ type: 'document.changed', actor: 'ada', document: { name: 'acme/quote/q-1', kind: 'quote', id: 'q-1' } }]);
    // The PATCH came last: the last of q-1's events (the stream's order across documents is not the feed's).
    expect(messages.filter((message) => message.event.document.id === 'q-1').at(-1)).toBe(patched[0]);

    expect(await readiness(server)).toEqual({ status: 200, nats: 'up' });
    // The server counts an event once its PubAck is back, a moment after the stream holds it.
    const metrics = await waitFor('the published count', async () => {
      const series = await server.metrics();
      return series.get('concord_nats_published_total{result="stored"}') === committed.length && series;
    });
    expect(metrics.get('concord_nats_lag_seconds_count')).toBe(committed.length);
    expect(metrics.get('concord_nats_published_total{result="duplicate"}') ?? 0).toBe(0);
  });

  it('publishes what committed while NATS was down once it is back, in order, losing nothing', { timeout: 120_000 }, async () => {
    const { server, db, nats, reader } = await setUp();
    const client = await editor(server, 'acme/quote/outage');
    client.doc.getMap('quote').set('title', 'before');
    await acknowledged(client);
    await allPublished(db, reader);

    await nats.stop();
    await waitFor('/readyz to say NATS is down', async () => (await readiness(server)).nats === 'down');
    expect((await readiness(server)).status).toBe(503);
    for (let edit = 1; edit <= 50; edit++) client.doc.getMap('quote').set('title', `while NATS is down ${edit}`);
    await acknowledged(client);
    const whileDown = await committedEvents(db);
    expect(whileDown.length).toBeGreaterThan(1);

    await nats.start();
    const { committed, messages } = await allPublished(db, reader);
    expect(committed.length).toBe(whileDown.length);
    expectPublishedOnce(committed, messages);
    await waitFor('/readyz to say NATS is up', async () => (await readiness(server)).nats === 'up');
  });

  it('keeps each document in order when NATS is killed mid-publishing', { timeout: 120_000 }, async () => {
    const { server, db, nats, reader } = await setUp();
    const writers = [await editor(server, 'acme/quote/stream-1'), await editor(server, 'acme/quote/stream-2')];
    let edit = 0;
    const writing = setInterval(() => writers.forEach((writer) => writer.doc.getMap('quote').set('title', `edit ${++edit}`)), 2);
    later(() => clearInterval(writing));
    await waitFor('some events on NATS', async () => (await reader.read()).length >= 50);
    await nats.stop();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await nats.start();
    const killedAt = (await reader.read()).length;
    await waitFor('more events on NATS', async () => (await reader.read()).length >= killedAt + 50);
    clearInterval(writing);
    await Promise.all(writers.map((writer) => acknowledged(writer)));

    const { committed, messages } = await allPublished(db, reader);
    expectPublishedOnce(committed, messages);
  });

  it('starts while NATS is away and publishes everything once it comes', { timeout: 90_000 }, async () => {
    const nats = new NatsProcess();
    const { server, db, reader } = await setUp({}, nats);
    await nats.stop();
    await server.stop();
    await server.start();
    expect(await readiness(server)).toEqual({ status: 503, nats: 'down' });
    const client = await editor(server, 'acme/quote/early');
    for (let edit = 1; edit <= 20; edit++) client.doc.getMap('quote').set('title', `edit ${edit}`);
    await acknowledged(client);

    await nats.start();
    const { committed, messages } = await allPublished(db, reader);
    expectPublishedOnce(committed, messages);
    await waitFor('/readyz to say NATS is up', async () => (await readiness(server)).nats === 'up');
  });

  it('connects with NATS_USER and NATS_PASSWORD to a server that asks for them', { timeout: 90_000 }, async () => {
    const credentials = { user: 'concord', pass: 'a-nats-password' };
    const { server, db, reader } = await setUp({ NATS_USER: credentials.user, NATS_PASSWORD: credentials.pass }, new NatsProcess({ credentials }));
    const client = await editor(server, 'acme/quote/authenticated');
    client.doc.getMap('quote').set('title', 'signed in');
    await acknowledged(client);
    const { committed, messages } = await allPublished(db, reader);
    expectPublishedOnce(committed, messages);
    expect(await readiness(server)).toEqual({ status: 200, nats: 'up' });
  });

  it('publishes an event larger than the server takes without its data, and goes on', { timeout: 90_000 }, async () => {
    const { server, db, reader } = await setUp({}, new NatsProcess({ maxPayload: 4096 }));
    const client = await editor(server, 'acme/quote/long');
    client.doc.getMap('quote').set('title', 'before the long comment');
    await acknowledged(client);
    addComment(client.doc, { id: 'c-long', body: 'x'.repeat(6000) });
    await acknowledged(client);
    client.doc.getMap('quote').set('title', 'after the long comment');
    await acknowledged(client);

    const { committed, messages } = await allPublished(db, reader);
    expectPublishedOnce(committed, messages);
    const long = messages.find((message) => message.event.type === 'document.changed' && message.event.seq[0] === 2)!;
    expect(long.event).toMatchObject({ data: null, truncated: true, document: { name: 'acme/quote/long' } });
    expect(messages.find((message) => message.event.type === 'comment.added')!.event.data).toEqual({ commentId: 'c-long', parentId: null, anchor: null });
    expect(messages.at(-1)!.event.data).toMatchObject({ changes: [{ field: 'title', new: 'after the long comment' }] });
  });

  it('publishes every committed event after a SIGKILL mid-publishing, each once', { timeout: 120_000 }, async () => {
    const { server, db, reader } = await setUp();
    const client = await editor(server, 'acme/quote/killed');
    // Edits keep committing and publishing while the server is killed.
    let edit = 0;
    const writing = setInterval(() => client.doc.getMap('quote').set('title', `edit ${++edit}`), 2);
    later(() => clearInterval(writing));
    await waitFor('some events on NATS', async () => (await reader.read()).length >= 20);
    await server.stop('SIGKILL');
    clearInterval(writing);
    const killedAt = (await reader.read()).length;

    // A new process is a new instance: it takes over once the dead one's lease lapses.
    await server.start();
    await acknowledged(client, 30_000);
    const { committed, messages } = await allPublished(db, reader);
    expect(committed.length).toBeGreaterThan(killedAt);
    expectPublishedOnce(committed, messages);
  });
});


describe.skipIf(!postgresUrl)(postgresTitle('two instances publishing to NATS'), () => {
  const cluster = clusterFixture();

  it('publishes each event once, each tenant by one instance at a time', { timeout: 90_000 }, async () => {
    const nats = await new NatsProcess().start();
    cluster.defer(() => nats.drop());
    const env = { NATS_URL: nats.url, EVENTS_POLL_MS: '100' };
    const { storage, servers } = await cluster.start([env, env]);
    const [a, b] = servers as [ServerProcess, ServerProcess];
    const db = await openTestDatabase(storage);
    cluster.defer(() => db.close());
    const writers = [
      await cluster.open(a, 'acme/quote/shared', 'alice'),
      await cluster.open(b, 'acme/quote/shared', 'bob'),
      await cluster.open(b, 'acme/quote/on-b', 'bob'),
      cluster.connect(a, 'globex/quote/g-1', await token({ tenant: 'globex', sub: 'gina' })),
    ];
    await synced(writers[3]!);
    for (let edit = 1; edit <= 30; edit++) {
      for (const [index, writer] of writers.entries()) writer.doc.getMap('quote').set(index % 2 ? 'title' : 'customerName', `edit ${edit} by ${index}`);
    }
    await Promise.all(writers.map((writer) => acknowledged(writer)));

    const { committed, messages } = await allPublished(db, new StreamReader(nats), ['acme', 'globex']);
    expectPublishedOnce(committed, messages);
    const stored = (all: Array<Map<string, number>>) => all.reduce((sum, metrics) => sum + (metrics.get('concord_nats_published_total{result="stored"}') ?? 0), 0);
    const counts = await waitFor('the published counts', async () => {
      const all = await Promise.all(servers.map((server) => server.metrics()));
      return stored(all) === committed.length && all;
    });
    for (const metrics of counts) expect(metrics.get('concord_nats_published_total{result="duplicate"}') ?? 0).toBe(0);
  });
});
