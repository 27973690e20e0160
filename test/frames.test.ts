import * as encoding from 'lib0/encoding';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { acknowledged, connect, refusal, synced, waitFor } from './support/clients.ts';
import { awarenessFrame, awarenessUpdate, frame, statelessFrame, syncFrame, truncatedSyncFrame, updateFrame } from './support/frames.ts';
import { nonJsonLines, RawSocket } from './support/raw-socket.ts';
import { serverForSuite } from './support/suite-server.ts';
import { token } from './support/tokens.ts';

/** Frames that are malformed after a readable document name: each closes that document with its code. */
const documentRefusals: Array<[string, string, (document: string) => Uint8Array]> = [
  ['garbage awareness', 'bad-frame', (document) => awarenessFrame(document, new Uint8Array([200, 1, 2, 3]))],
  ['an awareness state that is not JSON', 'bad-frame', (document) => awarenessFrame(document, awarenessUpdate([{ client: 7, clock: 1, state: '{"user": nope' }]))],
  // One state, the bytes `"`, 0xff, `"`: JSON once decoded leniently ("\ufffd"), but not UTF-8, which y-protocols' decoding refuses with an exception.
  ['an awareness state that is not UTF-8', 'bad-frame', (document) => awarenessFrame(document, new Uint8Array([1, 7, 1, 3, 0x22, 0xff, 0x22]))],
  ['garbage sync step 1', 'bad-frame', (document) => syncFrame(document, 0, new Uint8Array([5, 255, 255]))],
  ['an unknown sync subtype', 'bad-frame', (document) => syncFrame(document, 7, new Uint8Array([0, 0]))],
  ['a truncated sync message', 'bad-frame', truncatedSyncFrame],
  ['a truncated stateless message', 'bad-frame', (document) => frame(document, 5, (encoder) => encoding.writeVarUint(encoder, 50))],
  ['a client-sent broadcast-stateless', 'bad-frame', (document) => frame(document, 6, (encoder) => encoding.writeVarString(encoder, '{"a":1}'))],
  ['an authentication message other than a token', 'bad-frame', (document) => frame(document, 2, (encoder) => encoding.writeVarUint(encoder, 1))],
  ['a type only the server sends (sync status)', 'bad-frame', (document) => frame(document, 8, (encoder) => encoding.writeVarUint(encoder, 1))],
  ['an unknown message type', 'bad-frame', (document) => frame(document, 42)],
  ['bytes after a complete message', 'bad-frame', (document) => new Uint8Array([...statelessFrame(document, '{}'), 9, 9])],
  ['an update that is not a Yjs update', 'bad-update', (document) => updateFrame(document, new Uint8Array([1, 200, 3, 250, 255, 255, 255, 255, 7]))],
];

/** Frames whose document cannot be read: the whole socket is closed, with bad-frame. */
const socketRefusals: Array<[string, Uint8Array]> = [
  ['an empty frame', new Uint8Array()],
  ['a document name longer than the frame', new Uint8Array([50, 97, 98, 99])],
  ['a document name that is not UTF-8', new Uint8Array([2, 0xc3, 0x28, 0])],
];

describe('malformed frames', () => {
  const suite = serverForSuite();

  it.each(documentRefusals)('%s closes that document with its code; the socket\'s other document and other clients go on', async (what, code, malformed) => {
    const slug = what.replace(/[^a-z0-9]+/gi, '-').slice(0, 40);
    const [target, sibling] = [`acme/quote/frames-${slug}`, `acme/quote/frames-${slug}-sibling`];
    const bystander = connect(suite.server.wsUrl, target, await token({ sub: 'bea' }));
    await synced(bystander);
    const raw = await RawSocket.open(suite.server.wsUrl);
    const editor = await token();
    await raw.authenticate(target, editor);
    await raw.authenticate(sibling, editor);

    raw.send(malformed(target));
    await waitFor(`${target} closed`, () => raw.of(target).closeReasons.length > 0);
    expect(raw.of(target).closeReasons).toEqual([code]);

    // The same socket still writes to its other document, and the write is acknowledged.
    const doc = new Y.Doc();
    doc.getMap('quote').set('title', 'still open');
    raw.send(updateFrame(sibling, Y.encodeStateAsUpdate(doc)));
    await waitFor('the sibling write answered', () => raw.of(sibling).syncStatuses.length > 0);
    expect(raw.of(sibling).syncStatuses).toEqual([true]);
    expect(raw.isOpen).toBe(true);

    bystander.doc.getMap('quote').set('title', `after ${what}`);
    await acknowledged(bystander);
    expect((await suite.server.get('/healthz')).status).toBe(200);
    raw.close();
    bystander.provider.destroy();
  });

  it.each(socketRefusals)('%s closes the socket with bad-frame, not Unauthorized', async (_what, malformed) => {
    const raw = await RawSocket.open(suite.server.wsUrl);
    raw.send(malformed);
    expect(await raw.closed).toEqual({ code: 4400, reason: 'bad-frame' });
    expect((await suite.server.get('/healthz')).status).toBe(200);
  });

  it('a text frame closes the socket with 1003 bad-frame', async () => {
    const raw = await RawSocket.open(suite.server.wsUrl);
    raw.ws.send('hello');
    expect(await raw.closed).toEqual({ code: 1003, reason: 'bad-frame' });
  });

  it('refusals are counted by code and logged as JSON lines only (Hocuspocus prints nothing of its own)', async () => {
    expect(await refusal(suite.server.wsUrl, 'acme/quote/frames-bad-token', 'not a token')).toBe('bad-token');
    const metrics = await suite.server.metrics();
    expect(metrics.get('concord_refusals_total{code="bad-frame"}')).toBeGreaterThanOrEqual(documentRefusals.length - 1 + socketRefusals.length + 1);
    expect(metrics.get('concord_refusals_total{code="bad-token"}')).toBeGreaterThanOrEqual(1);
    expect(suite.server.logs).toContain('"code":"bad-token"');
    expect(nonJsonLines(suite.server.logs)).toEqual([]);
  });
});
