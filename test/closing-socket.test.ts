import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { beforeHandleMessagePayload, connectedPayload, Connection } from '@hocuspocus/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { Authorization } from '../src/auth/extension.ts';
import type { ClientOwners } from '../src/auth/client-owners.ts';
import type { TokenVerifier } from '../src/auth/tokens.ts';
import { WriteRefusals } from '../src/auth/write-refusals.ts';
import type { ConnectionContext } from '../src/context.ts';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { createLogger } from '../src/log.ts';
import { createMetrics } from '../src/metrics.ts';
import { waitFor } from './support/clients.ts';
import { createStorage, type TestStorage } from './support/database.ts';
import { authFrame, syncFrame, updateFrame } from './support/frames.ts';
import { startServer, type ServerProcess } from './support/server.ts';

/**
 * A WebSocket client written by hand, because it must do what `ws`'s client
 * never does: send its close frame, then keep its side of the connection open,
 * so that the server's socket stays CLOSING (the server has the close frame,
 * and waits for the client to hang up).
 */
class HalfClosingSocket {
  private readonly tcp: Socket;
  private received = Buffer.alloc(0);
  /** The server's close frame and end of its side both came. */
  readonly closedByServer: Promise<void>;

  private constructor(tcp: Socket) {
    this.tcp = tcp;
    tcp.on('data', (chunk: Buffer) => (this.received = Buffer.concat([this.received, chunk])));
    this.closedByServer = once(tcp, 'end').then(() => {
      if (!this.opcodes().includes(0x8)) throw new Error('the server ended the connection without a close frame');
    });
  }

  static async open(port: number): Promise<HalfClosingSocket> {
    const tcp = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    await once(tcp, 'connect');
    const key = randomBytes(16).toString('base64');
    tcp.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    const socket = new HalfClosingSocket(tcp);
    const head = await waitFor('the upgrade', () => {
      const end = socket.received.indexOf('\r\n\r\n');
      return end >= 0 && socket.received.subarray(0, end).toString();
    });
    if (!head.startsWith('HTTP/1.1 101')) throw new Error(`not upgraded: ${head}`);
    socket.received = socket.received.subarray(head.length + 4);
    return socket;
  }

  /** A binary frame, masked as a client's must be. */
  send(payload: Uint8Array, opcode = 0x2): void {
    const length = payload.length < 126 ? Buffer.from([payload.length | 0x80]) : Buffer.from([126 | 0x80, payload.length >> 8, payload.length & 0xff]);
    const mask = randomBytes(4);
    this.tcp.write(Buffer.concat([Buffer.from([0x80 | opcode]), length, mask, Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!))]));
  }

  /** A close frame (1000); the client's side stays open. */
  sendClose(): void {
    this.send(new Uint8Array([0x03, 0xe8]), 0x8);
  }

  end(): void {
    this.tcp.destroy();
  }

  /** The opcodes of the server's frames so far (its frames are short and unmasked). */
  private opcodes(): number[] {
    const opcodes: number[] = [];
    for (let at = 0; at + 2 <= this.received.length; ) {
      const short = this.received[at + 1]! & 0x7f;
      const [header, length] = short === 126 ? [4, this.received.readUInt16BE(at + 2)] : short === 127 ? [10, Number(this.received.readBigUInt64BE(at + 2))] : [2, short];
      opcodes.push(this.received[at]! & 0x0f);
      at += header + length;
    }
    return opcodes;
  }
}

/** A JWKS endpoint whose answers wait while it is held: a token's verification waits with them. */
async function heldJwks(jwk: object): Promise<{ server: Server; url: string; asked: Promise<void>; release(): void }> {
  const waiting: ServerResponse[] = [];
  let held = true;
  const { promise: asked, resolve: askedNow } = Promise.withResolvers<void>();
  const answer = (response: ServerResponse) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
  const server = createServer((_, response) => {
    if (!held) return answer(response);
    waiting.push(response);
    askedNow();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks.json`,
    asked,
    release() {
      held = false;
      waiting.splice(0).forEach(answer);
    },
  };
}

describe('a socket the client is closing', () => {
  let storage: TestStorage;
  beforeAll(async () => {
    storage = await createStorage();
  });
  afterAll(async () => {
    await storage?.drop();
  });

  // Hocuspocus 4.7 drops the authentication state of every document of a socket that is closing, while
  // authentications may still be under way; a frame handed to it after that starts a fresh state, which an
  // authentication under way takes for its own: a connection without the context its token gave.
  it('hands Hocuspocus nothing more for a document whose authentication had not reached it', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwks = await heldJwks({ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' });
    let server: ServerProcess | undefined;
    let socket: HalfClosingSocket | undefined;
    try {
      server = await startServer({ ...storage.env, AUTH_JWT_SECRET: '', AUTH_JWKS_URL: jwks.url });
      const document = 'acme/quote/closing-socket';
      const signed = await new SignJWT({ tenant: 'acme', role: 'editor' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('alice').setExpirationTime('5m').sign(privateKey);
      socket = await HalfClosingSocket.open(server.port);

      socket.send(authFrame(document, signed));
      socket.send(syncFrame(document, 0, new Uint8Array([0])));
      // A frame whose document cannot be read: once it is refused, every frame before it has been handled.
      socket.send(new Uint8Array([0xff]));
      // The server reads the token, and its verification waits for the keys...
      await jwks.asked;
      // ...while the client's close frame comes and the server answers it: its socket is closing.
      socket.sendClose();
      await socket.closedByServer;
      jwks.release();

      await waitFor('the frames before the close frame handled', async () => ((await server!.metrics()).get('concord_refusals_total{code="bad-frame"}') ?? 0) > 0);
      // What Hocuspocus would do with the authentication takes a document load: some milliseconds.
      await sleep(1_000);
      expect((await server.metrics()).get('concord_document_load_seconds_count') ?? 0).toBe(0);
    } finally {
      socket?.end();
      jwks.release();
      await server?.stop();
      await new Promise((resolve) => jwks.server.close(resolve));
    }
  });
});

describe('Authorization, should Hocuspocus set up a connection with another context than its authentication made', () => {
  const document = 'acme/quote/lost-context';
  const unused = () => {
    throw new Error('not used here');
  };

  /** A connection as Hocuspocus hands it to the hooks, with `context`; records how it was closed. */
  function connectionWith(context: Partial<ConnectionContext>): { connection: Connection; closes: unknown[] } {
    const closes: unknown[] = [];
    const connection = { context, document: { name: document }, readOnly: false, close: (event: unknown) => closes.push(event), onClose: () => {} };
    return { connection: connection as unknown as Connection, closes };
  }

  function authorization() {
    const metrics = createMetrics();
    const refusals = new WriteRefusals(createLogger('silent'), metrics);
    return { metrics, extension: new Authorization(unused as unknown as TokenVerifier, {} as ClientOwners, refusals, metrics, 1) };
  }

  const doc = new Y.Doc();
  doc.getMap('quote').set('title', 'written by nobody known');
  const write = updateFrame(document, Y.encodeStateAsUpdate(doc));
  const principal = { tenant: 'acme', userId: 'alice', name: 'Alice', role: 'editor' as const, expiresAt: Date.now() + 60_000 };

  it('closes a connection without a user with the code internal, and refuses its hooks', async () => {
    const { extension, metrics } = authorization();
    const { connection, closes } = connectionWith({});
    const payload = { connection, update: write, document: new Y.Doc() } as unknown as beforeHandleMessagePayload;
    await expect(extension.beforeHandleMessage(payload)).rejects.toMatchObject({ reason: 'internal' });
    await expect(extension.connected({ connection, context: connection.context } as connectedPayload<ConnectionContext>)).rejects.toMatchObject({ reason: 'internal' });
    expect(closes).toEqual([
      { code: 4500, reason: 'internal' },
      { code: 4500, reason: 'internal' },
    ]);
    expect((await metrics.refusals.get()).values.find((value) => value.labels.code === 'internal')?.value).toBe(2);
  });

  it('lets a connection with its user through', async () => {
    const { extension } = authorization();
    const { connection, closes } = connectionWith({ principal, document: parseDocumentName(document) });
    const syncRequest = syncFrame(document, 0, new Uint8Array([0]));
    await extension.beforeHandleMessage({ connection, update: syncRequest, document: new Y.Doc() } as unknown as beforeHandleMessagePayload);
    expect(closes).toEqual([]);
  });
});
