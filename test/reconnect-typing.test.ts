import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acknowledged, connect, synced, waitFor } from './support/clients.ts';
import { createStorage, type TestStorage } from './support/database.ts';
import { startServer, type ServerProcess } from './support/server.ts';
import { TcpProxy } from './support/tcp-proxy.ts';
import { token } from './support/tokens.ts';

const WAIT_MS = 60_000;
const TYPING_EVERY_MS = 10;
/** Characters typed once the provider is back and synced, so typing spans the whole reconnect. */
const TYPED_AFTER_SYNC = 50;
const SLOW_LINK_MS = 100;
const LOST_WRITES = 10;

let storage: TestStorage;
let server: ServerProcess;
let proxy: TcpProxy;

beforeAll(async () => {
  storage = await createStorage();
  server = await startServer(storage.env);
  proxy = await new TcpProxy({ host: '127.0.0.1', port: server.port }).listen();
});
afterAll(async () => {
  await proxy?.close();
  await server?.stop();
  await storage?.drop();
});

describe('a client that types while it reconnects', () => {
  it('ends with every write acknowledged (unsyncedChanges 0) and every character in Postgres', async () => {
    const name = 'acme/quote/typing';
    const client = connect(`ws://127.0.0.1:${proxy.port}`, name, await token({ sub: 'alice' }));
    await synced(client, WAIT_MS);
    client.doc.getMap('quote').set('title', 'online');
    await acknowledged(client, WAIT_MS);

    // Typing every 10 ms from before the server's socket is cut until well after the reconnect.
    const notes = client.doc.getText('notes');
    let typed = 0;
    const typing = setInterval(() => notes.insert(notes.length, String.fromCharCode(97 + (typed++ % 26))), TYPING_EVERY_MS);
    const socket = client.provider.configuration.websocketProvider;
    let closes = 0;
    const countClose = () => closes++;
    socket.on('close', countClose);
    try {
      // The link dies silently: what the client sends meanwhile is lost. Then
      // the connection is cut, and the writes typed after the reconnect depend
      // on lost ones until the client's sync step 2 brings them again.
      proxy.stall();
      const typedBeforeStall = typed;
      await waitFor('writes lost', () => typed >= typedBeforeStall + LOST_WRITES, WAIT_MS);
      proxy.cut();
      await waitFor('a failed reconnect', () => closes >= 2, WAIT_MS);
      // A slow link back: more writes are typed between the client's sync step 1 and its step 2.
      proxy.delayAnswers(SLOW_LINK_MS);
      proxy.restore();
      await waitFor('back online', () => socket.status === 'connected', WAIT_MS);
      await synced(client, WAIT_MS);
      const typedAtSync = typed;
      await waitFor('typing after the sync', () => typed >= typedAtSync + TYPED_AFTER_SYNC, WAIT_MS);
    } finally {
      clearInterval(typing);
      socket.off('close', countClose);
    }

    await acknowledged(client, WAIT_MS);
    expect(client.provider.unsyncedChanges).toBe(0);
    // The cut closes the socket (no reason); the server never closed the document.
    expect(client.closeReasons.filter(Boolean)).toEqual([]);
    const expected = notes.toString();
    expect(expected).toHaveLength(typed);
    // Acknowledged means committed: the document as of its last committed update holds every character.
    const response = await server.get('/api/documents/quote/typing', await token({ sub: 'reader', role: 'viewer' }));
    expect(response.status).toBe(200);
    const { content } = (await response.json()) as { content: { quote: { title: string }; notes: string } };
    expect(content.notes).toBe(expected);
    expect(content.quote.title).toBe('online');
    client.provider.destroy();
  });
});
