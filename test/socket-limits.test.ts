import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { acknowledged, connect, synced, waitFor } from './support/clients.ts';
import { createStorage, type TestStorage } from './support/database.ts';
import { authFrame, queryAwarenessFrame, syncFrame, updateFrame } from './support/frames.ts';
import { nonJsonLines, RawSocket } from './support/raw-socket.ts';
import { startServer, type ServerProcess } from './support/server.ts';
import { token } from './support/tokens.ts';
import { numbersOf, pushNumbered } from './support/documents.ts';

// Every budget below is spent by frames sent in one go: the server reads them
// within its first one-second window, so only the burst and one second's rate count.

async function limitsReached(server: ServerProcess, limit: string): Promise<number> {
  return (await server.metrics()).get(`concord_limits_reached_total{limit="${limit}"}`) ?? 0;
}

/** The stateless refusals a document received. */
function refusals(socket: RawSocket, document: string): unknown[] {
  return socket.of(document).stateless.filter((message) => message.type === 'concord:refused').map((message) => message.code);
}

/** A sync step 1 with an empty state vector: answered with a sync step 2. */
const syncStep1 = (document: string) => syncFrame(document, 0, new Uint8Array([0]));

/** Authenticates `document` and waits until it is set up (its sync answered): nothing of it is buffered any more. */
async function openDocument(socket: RawSocket, document: string): Promise<void> {
  await socket.authenticate(document, await token());
  socket.send(syncStep1(document));
  await waitFor(`${document} set up`, () => socket.of(document).syncStep2s === 1, 20_000);
}

/** An update frame of exactly `size` bytes. */
function updateFrameOfSize(document: string, size: number): Uint8Array {
  for (let length = size - 60; ; length++) {
    const doc = new Y.Doc();
    doc.clientID = 1_000_001; // a random one varies the update's length
    doc.getMap('quote').set('title', 'x'.repeat(length));
    const frame = updateFrame(document, Y.encodeStateAsUpdate(doc));
    if (frame.length === size) return frame;
    if (frame.length > size) throw new Error(`no update frame of exactly ${size} bytes`);
  }
}

describe('socket limits', () => {
  let storage: TestStorage;
  beforeAll(async () => {
    storage = await createStorage();
  });
  afterAll(async () => {
    await storage?.drop();
  });

  describe('messages per socket: SOCKET_MESSAGES_PER_SECOND with SOCKET_MESSAGE_BURST', () => {
    const RATE = 1;
    const BURST = 20;
    let server: ServerProcess;
    beforeAll(async () => {
      server = await startServer({ ...storage.env, SOCKET_MESSAGES_PER_SECOND: String(RATE), SOCKET_MESSAGE_BURST: String(BURST) });
    });
    afterAll(() => server?.stop());

    it('allows rate plus burst, then drops a message that needs no answer and tells its document', async () => {
      const document = 'acme/quote/limit-messages';
      const socket = await RawSocket.open(server.wsUrl);
      const before = await limitsReached(server, 'SOCKET_MESSAGES_PER_SECOND');
      const budget = RATE + BURST;
      const refused = 3;
      // The authentication and a sync request, then queries until the budget is spent, and a few more.
      socket.send(authFrame(document, await token()));
      socket.send(syncStep1(document));
      for (let i = 2; i < budget + refused; i++) socket.send(queryAwarenessFrame(document));

      await waitFor('the refusal', () => refusals(socket, document).length > 0);
      expect(refusals(socket, document)).toEqual(['rate-limited']);
      expect(await limitsReached(server, 'SOCKET_MESSAGES_PER_SECOND')).toBe(before + refused);
      await waitFor('the sync answered', () => socket.of(document).syncStep2s === 1);
      expect(socket.isOpen).toBe(true);
      socket.close();
    });

    it('each socket has a budget of its own: one that spent all of it leaves another whole', async () => {
      const document = 'acme/quote/limit-messages-own';
      const spender = await RawSocket.open(server.wsUrl);
      spender.send(authFrame(document, await token()));
      for (let i = 1; i < RATE + BURST + 1; i++) spender.send(queryAwarenessFrame(document));
      await waitFor('the spender refused', () => refusals(spender, document).length > 0);

      // Within the same window, a whole budget on another socket: its sync request, sent last, is answered after the rest.
      const other = await RawSocket.open(server.wsUrl);
      other.send(authFrame(document, await token()));
      for (let i = 2; i < RATE + BURST; i++) other.send(queryAwarenessFrame(document));
      other.send(syncStep1(document));
      await waitFor('the other socket answered', () => other.of(document).syncStep2s === 1);
      expect(refusals(other, document)).toEqual([]);
      spender.close();
      other.close();
    });

    it('a write over the budget closes the socket with 1008 rate-limited (the provider reconnects and sends it again)', async () => {
      const document = 'acme/quote/limit-messages-write';
      const socket = await RawSocket.open(server.wsUrl);
      socket.send(authFrame(document, await token()));
      for (let i = 1; i < RATE + BURST; i++) socket.send(queryAwarenessFrame(document));
      const doc = new Y.Doc();
      doc.getMap('quote').set('title', 'one too many');
      socket.send(updateFrame(document, Y.encodeStateAsUpdate(doc)));
      expect(await socket.closed).toEqual({ code: 1008, reason: 'rate-limited' });
      expect(socket.of(document).syncStatuses).toEqual([]);
    });

    it('a provider closed for writing over the budget reconnects, and its edits land', async () => {
      const document = 'acme/quote/limit-messages-provider';
      const writer = connect(server.wsUrl, document, await token({ sub: 'alice' }));
      await synced(writer, 30_000);
      const edits = RATE + BURST + 10;
      for (let i = 0; i < edits; i++) pushNumbered(writer.doc, i);
      await waitFor('the socket closed', () => writer.closeReasons.includes('rate-limited'), 30_000);
      // Once its budget is back, its sync brings every edit in one message.
      await acknowledged(writer, 90_000);
      const reader = connect(server.wsUrl, document, await token({ sub: 'bea' }));
      await synced(reader, 30_000);
      expect(numbersOf(reader.doc)).toEqual(Array.from({ length: edits }, (_, i) => i));
      writer.provider.destroy();
      reader.provider.destroy();
    });

    it('a socket that goes on sending after a whole burst was refused is closed', async () => {
      const document = 'acme/quote/limit-messages-flood';
      const socket = await RawSocket.open(server.wsUrl);
      const before = await limitsReached(server, 'SOCKET_MESSAGES_PER_SECOND');
      socket.send(authFrame(document, await token()));
      for (let i = 1; i < RATE + BURST + BURST; i++) socket.send(queryAwarenessFrame(document));
      expect(await socket.closed).toEqual({ code: 1008, reason: 'rate-limited' });
      expect(await limitsReached(server, 'SOCKET_MESSAGES_PER_SECOND')).toBe(before + BURST);
      expect(nonJsonLines(server.logs)).toEqual([]);
    });
  });

  describe('bytes per socket: SOCKET_BYTES_PER_SECOND with SOCKET_BYTE_BURST', () => {
    const MAX_MESSAGE_BYTES = 16 * 1024;
    let server: ServerProcess;
    beforeAll(async () => {
      server = await startServer({
        ...storage.env,
        MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
        SOCKET_BYTES_PER_SECOND: '1024',
        SOCKET_BYTE_BURST: String(MAX_MESSAGE_BYTES),
      });
    });
    afterAll(() => server?.stop());

    it('a largest message always fits the burst; past rate plus burst the next message is refused', async () => {
      const document = 'acme/quote/limit-bytes';
      const socket = await RawSocket.open(server.wsUrl);
      const before = await limitsReached(server, 'SOCKET_BYTES_PER_SECOND');
      // The authentication fits the rate; the largest message takes the whole burst.
      socket.send(authFrame(document, await token()));
      socket.send(updateFrameOfSize(document, MAX_MESSAGE_BYTES));
      socket.send(queryAwarenessFrame(document));

      await waitFor('the write answered', () => socket.of(document).syncStatuses.length === 1);
      expect(socket.of(document).syncStatuses).toEqual([true]);
      await waitFor('the refusal', () => refusals(socket, document).length > 0);
      expect(refusals(socket, document)).toEqual(['rate-limited']);
      expect(await limitsReached(server, 'SOCKET_BYTES_PER_SECOND')).toBe(before + 1);
      expect(socket.isOpen).toBe(true);
      socket.close();
    });

    it('refuses to start when SOCKET_BYTE_BURST cannot hold one largest message', async () => {
      await expect(startServer({ ...storage.env, MAX_MESSAGE_BYTES: '2048', SOCKET_BYTE_BURST: '1024' })).rejects.toThrow(/SOCKET_BYTE_BURST must be at least MAX_MESSAGE_BYTES/);
    });
  });

  describe('a client that stops reading: SOCKET_UNSENT_MAX_BYTES', () => {
    const UNSENT_MAX_BYTES = 256 * 1024;
    let server: ServerProcess;
    beforeAll(async () => {
      server = await startServer({ ...storage.env, SOCKET_UNSENT_MAX_BYTES: String(UNSENT_MAX_BYTES), SOCKET_STALL_TIMEOUT_MS: '2000', SYNC_REQUESTS_PER_WINDOW: '1000' });
    });
    afterAll(() => server?.stop());

    it('a client that reads gets every answer, each larger than the bound; one that stops reading gets no more answers and is cut after SOCKET_STALL_TIMEOUT_MS', async () => {
      const document = 'acme/quote/limit-unsent';
      const writer = await RawSocket.open(server.wsUrl);
      await openDocument(writer, document);
      const doc = new Y.Doc();
      doc.getText('notes').insert(0, 'n'.repeat(4 * UNSENT_MAX_BYTES));
      writer.send(updateFrame(document, Y.encodeStateAsUpdate(doc)));
      await waitFor('the write answered', () => writer.of(document).syncStatuses.length === 1);
      expect(writer.of(document).syncStatuses).toEqual([true]);
      const before = await limitsReached(server, 'SOCKET_UNSENT_MAX_BYTES');
      // 100 whole-document answers: far more than the network's buffers hold for a reader that does not read.
      const requests = 100;

      const reader = await RawSocket.open(server.wsUrl);
      await openDocument(reader, document);
      for (let i = 0; i < requests; i++) reader.send(syncStep1(document));
      await waitFor('every answer read', () => reader.of(document).syncStep2s === 1 + requests, 30_000);
      expect(reader.isOpen).toBe(true);
      expect(await limitsReached(server, 'SOCKET_UNSENT_MAX_BYTES')).toBe(before);

      const stalled = await RawSocket.open(server.wsUrl);
      await openDocument(stalled, document);
      const tcp = (stalled.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
      tcp.pause();
      for (let i = 0; i < requests; i++) stalled.send(syncStep1(document));
      const stalledAt = performance.now();
      await waitFor('the stalled socket cut', async () => (await limitsReached(server, 'SOCKET_UNSENT_MAX_BYTES')) === before + 1, 30_000);
      expect(performance.now() - stalledAt).toBeGreaterThanOrEqual(2000);
      // What reached it before the cut is read, then the connection ends without a close message (none could pass the unread).
      tcp.resume();
      expect((await stalled.closed).code).toBe(1006);
      expect(stalled.of(document).syncStep2s).toBeLessThan(1 + requests);
      expect(writer.isOpen && reader.isOpen).toBe(true);
      writer.close();
      reader.close();
    });
  });

  describe('sockets that do not authenticate', () => {
    let server: ServerProcess;
    beforeAll(async () => {
      server = await startServer({ ...storage.env, UNAUTHENTICATED_TIMEOUT_MS: '1500' });
    });
    afterAll(() => server?.stop());

    it('are closed after UNAUTHENTICATED_TIMEOUT_MS, whatever they send; an authenticated socket stays', async () => {
      const before = await limitsReached(server, 'UNAUTHENTICATED_TIMEOUT_MS');
      const [silent, chatty, authenticated] = await Promise.all([1, 2, 3].map(() => RawSocket.open(server.wsUrl)));
      await authenticated!.authenticate('acme/quote/limit-timeout', await token());
      // Frames for a document never authenticated do not keep a socket alive.
      const keepSending = setInterval(() => chatty!.isOpen && chatty!.send(queryAwarenessFrame('acme/quote/limit-timeout')), 100);
      try {
        expect(await silent!.closed).toEqual({ code: 1008, reason: 'rate-limited' });
        expect(await chatty!.closed).toEqual({ code: 1008, reason: 'rate-limited' });
      } finally {
        clearInterval(keepSending);
      }
      expect(authenticated!.isOpen).toBe(true);
      expect(await limitsReached(server, 'UNAUTHENTICATED_TIMEOUT_MS')).toBe(before + 2);
      authenticated!.close();
    });

    it('what Hocuspocus buffers for unauthenticated documents is refused at its bounds, with JSON logs only', async () => {
      const before = await limitsReached(server, 'UNAUTHENTICATED_QUEUE');
      // 1,000 buffered messages are allowed; the next one closes the socket.
      const socket = await RawSocket.open(server.wsUrl);
      const open = 'acme/quote/limit-queue-open';
      await openDocument(socket, open);
      for (let i = 0; i < 1000; i++) socket.send(queryAwarenessFrame('acme/quote/limit-queue-waiting'));
      socket.send(syncStep1(open));
      await waitFor('the open document answered', () => socket.of(open).syncStep2s === 2);
      expect(socket.isOpen).toBe(true);
      socket.send(queryAwarenessFrame('acme/quote/limit-queue-waiting'));
      expect(await socket.closed).toEqual({ code: 1008, reason: 'rate-limited' });

      // 100 documents may wait for authentication; the 101st closes the socket.
      const many = await RawSocket.open(server.wsUrl);
      await openDocument(many, open);
      for (let i = 0; i < 100; i++) many.send(queryAwarenessFrame(`acme/quote/limit-pending-${i}`));
      many.send(syncStep1(open));
      await waitFor('the open document answered', () => many.of(open).syncStep2s === 2);
      expect(many.isOpen).toBe(true);
      many.send(queryAwarenessFrame('acme/quote/limit-pending-100'));
      expect(await many.closed).toEqual({ code: 1008, reason: 'rate-limited' });

      expect(await limitsReached(server, 'UNAUTHENTICATED_QUEUE')).toBe(before + 2);
      expect(nonJsonLines(server.logs)).toEqual([]);
    });
  });
});
