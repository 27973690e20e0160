import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { acknowledged, connect, synced, waitFor, type Client } from './support/clients.ts';
import { authFrame, syncFrame } from './support/frames.ts';
import { RawSocket } from './support/raw-socket.ts';
import { serverForSuite } from './support/suite-server.ts';
import { token } from './support/tokens.ts';

// Over the 64 KiB from which a document's stored content is sent ahead of its load.
const LONG_NOTES = 'stored ahead '.repeat(8_000);
const SHORT_NOTES = 'short';

/**
 * A client opening a document no server has loaded gets its stored content
 * while the server integrates it, before its connection is set up (the
 * server's own sync step 1 comes only then).
 */
describe('stored content sent ahead of a load', () => {
  const suite = serverForSuite();
  const url = () => suite.server.wsUrl;

  const close = (client: Client) => client.provider.destroy();

  /** Writes `notes` into `name` and waits until the server has unloaded it. */
  async function stored(name: string, notes: string): Promise<void> {
    const writer = connect(url(), name, await token());
    await synced(writer);
    writer.doc.transact(() => {
      writer.doc.getMap('quote').set('title', 'Ahead');
      writer.doc.getText('notes').insert(0, notes);
    });
    await acknowledged(writer);
    close(writer);
    await waitFor('the document unloaded', async () => (await suite.server.metrics()).get('concord_loaded_documents') === 0, 20_000);
  }

  /**
   * Opens `name` on a raw socket as a provider does (authentication, then a
   * sync step 1, with an empty state vector unless given) and waits for the
   * server's sync step 1 and answer, sent once the document is loaded and the
   * connection set up. Returns the sync messages that came before: sent ahead
   * of the load.
   */
  async function open(name: string, stateVector: Uint8Array = new Uint8Array([0])): Promise<{ socket: RawSocket; ahead: Array<{ step: number; payload: Uint8Array }> }> {
    const socket = await RawSocket.open(url());
    // The request goes right behind the authentication, so the server has it before it reads the log (PGlite reads fast).
    socket.send(authFrame(name, await token({ sub: 'vic', role: 'viewer' })));
    socket.send(syncFrame(name, 0, stateVector));
    const setUpAt = () => socket.of(name).sync.findIndex(({ step }) => step === 0);
    await waitFor('the sync answered', () => setUpAt() >= 0 && socket.of(name).sync.slice(setUpAt()).some(({ step }) => step === 1), 20_000);
    socket.close();
    return { socket, ahead: socket.of(name).sync.slice(0, setUpAt()) };
  }

  it('a long document: its content arrives before the connection is set up, as updates, and equals what was stored', async () => {
    const name = 'acme/quote/ahead-long';
    await stored(name, LONG_NOTES);

    const { ahead } = await open(name);
    // The stored content came first, as updates: a provider counts itself synced only at the answer.
    expect(ahead.length).toBeGreaterThan(0);
    expect(ahead.every(({ step }) => step === 2)).toBe(true);
    const content = new Y.Doc();
    for (const { payload } of ahead) Y.applyUpdate(content, payload);
    expect(content.getText('notes').toString()).toBe(LONG_NOTES);
    expect(content.getMap('quote').get('title')).toBe('Ahead');
  });

  it('a short document is not sent ahead: it loads in milliseconds, and the sync answer would send it twice', async () => {
    const name = 'acme/quote/ahead-short';
    await stored(name, SHORT_NOTES);

    const { ahead } = await open(name);
    expect(ahead).toEqual([]);
  });

  it('a client that holds the document already (a provider reconnecting) is not sent it ahead', async () => {
    const name = 'acme/quote/ahead-held';
    await stored(name, LONG_NOTES);
    const held = new Y.Doc();
    const reader = connect(url(), name, await token({ role: 'viewer' }), held);
    await synced(reader);
    close(reader);
    await waitFor('the document unloaded', async () => (await suite.server.metrics()).get('concord_loaded_documents') === 0, 20_000);

    const { ahead } = await open(name, Y.encodeStateVector(held));
    expect(ahead).toEqual([]);
  });

  it('a provider opening a long document cold gets it whole; what it types as the content arrives is acknowledged; nothing is doubled', async () => {
    const name = 'acme/quote/ahead-provider';
    await stored(name, LONG_NOTES);

    const doc = new Y.Doc();
    const notes = doc.getText('notes');
    const editor = connect(url(), name, await token(), doc);
    // Sent ahead, the content arrives while the server still loads the document: the edit waits for the load.
    notes.observe(function typeOnArrival() {
      notes.unobserve(typeOnArrival);
      notes.insert(0, 'Edited: ');
    });
    await synced(editor);
    await acknowledged(editor);
    expect(notes.toString()).toBe(`Edited: ${LONG_NOTES}`);
    close(editor);
    await waitFor('the document unloaded', async () => (await suite.server.metrics()).get('concord_loaded_documents') === 0, 20_000);

    const reader = connect(url(), name, await token({ role: 'viewer' }));
    await synced(reader);
    expect(reader.doc.getText('notes').toString()).toBe(`Edited: ${LONG_NOTES}`);
    close(reader);
  });
});
