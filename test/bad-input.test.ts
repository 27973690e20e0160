import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { acknowledged, connect, synced, waitFor } from './support/clients.ts';
import { authFrame, truncatedSyncFrame, updateFrame } from './support/frames.ts';
import { serverForSuite } from './support/suite-server.ts';
import { token } from './support/tokens.ts';
import * as decoding from 'lib0/decoding';

const MAX_MESSAGE_BYTES = 64 * 1024;
const suite = serverForSuite({ MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) });

interface RawClient {
  ws: WebSocket;
  /** Close reasons Hocuspocus sent per document (message type 7). */
  closeReasons: string[];
  /** Answers to writes (message type 8): true for applied. */
  syncStatuses: boolean[];
  closed: Promise<{ code: number }>;
}

async function rawClient(document: string): Promise<RawClient> {
  const ws = new WebSocket(suite.server.wsUrl);
  const closeReasons: string[] = [];
  const syncStatuses: boolean[] = [];
  const closed = new Promise<{ code: number }>((resolve) => ws.on('close', (code) => resolve({ code })));
  ws.on('message', (data: Buffer) => {
    const decoder = decoding.createDecoder(new Uint8Array(data));
    decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    if (type === 7) closeReasons.push(decoding.readVarString(decoder));
    if (type === 8) syncStatuses.push(decoding.readVarUint(decoder) === 1);
  });
  await new Promise((resolve) => ws.once('open', resolve));
  ws.send(authFrame(document, await token()));
  return { ws, closeReasons, syncStatuses, closed };
}

/** An editor on `name` whose session must come through every misbehaviour of others intact. */
async function bystander(name: string) {
  const client = connect(suite.server.wsUrl, name, await token({ sub: 'bea' }));
  await synced(client);
  return client;
}

async function stillServes(client: Awaited<ReturnType<typeof bystander>>, value: string) {
  client.doc.getMap('quote').set('title', value);
  await acknowledged(client);
  expect((await suite.server.get('/healthz')).status).toBe(200);
  expect(suite.server.running).toBe(true);
}

describe('bad input never stops the server or harms another connection', () => {
  it('an update that is not a Yjs update is refused with bad-update and never applied', async () => {
    const name = 'acme/quote/garbage-update';
    const other = await bystander(name);
    const raw = await rawClient(name);
    raw.ws.send(updateFrame(name, new Uint8Array([1, 200, 3, 250, 255, 255, 255, 255, 7])));
    await waitFor('bad-update', () => raw.closeReasons.includes('bad-update'));
    await stillServes(other, 'after garbage');
    expect(other.doc.getMap('quote').toJSON()).toEqual({ title: 'after garbage' });
    raw.ws.close();
    other.provider.destroy();
  });

  it('writes Yjs has to park (missing dependencies) are answered once what they need arrives; a parked delete does not hold back later writes', async () => {
    const name = 'acme/quote/parked';
    const other = await bystander(name);
    const raw = await rawClient(name);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const author = new Y.Doc();
    const updates: Uint8Array[] = [];
    author.on('update', (update: Uint8Array) => updates.push(update));
    const notes = author.getText('notes');
    notes.insert(0, 'first ');
    notes.insert(6, 'second');
    notes.insert(12, ' third');
    notes.delete(0, 6);

    const answers = (count: number) => waitFor(`${count} answers`, () => raw.syncStatuses.length === count && raw.syncStatuses);
    // Two writes parked one after the other, and a delete of content the server has not seen.
    raw.ws.send(updateFrame(name, updates[1]!));
    raw.ws.send(updateFrame(name, updates[2]!));
    raw.ws.send(updateFrame(name, updates[3]!));
    // An ordinary write from someone else is acknowledged while the delete is still parked.
    other.doc.getMap('quote').set('title', 'unaffected');
    await acknowledged(other);
    // The missing write arrives: it and everything parked behind it apply, and all four are acknowledged.
    raw.ws.send(updateFrame(name, updates[0]!));
    expect(await answers(4)).toEqual([true, true, true, true]);
    await waitFor('all at the bystander', () => other.doc.getText('notes').toString() === 'second third');
    raw.ws.close();
    other.provider.destroy();
  });

  it('a truncated frame is refused with bad-frame', async () => {
    const name = 'acme/quote/truncated';
    const other = await bystander(name);
    const raw = await rawClient(name);
    await new Promise((resolve) => setTimeout(resolve, 200));
    raw.ws.send(truncatedSyncFrame(name));
    await waitFor('bad-frame', () => raw.closeReasons.includes('bad-frame'));
    await stillServes(other, 'after a truncated frame');
    raw.ws.close();
    other.provider.destroy();
  });

  it('bytes that are no frame at all, and text frames, close only that socket', async () => {
    const other = await bystander('acme/quote/noise');
    const noise = new WebSocket(suite.server.wsUrl);
    await new Promise((resolve) => noise.once('open', resolve));
    const noiseClosed = new Promise((resolve) => noise.on('close', resolve));
    noise.send(new Uint8Array([255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1]));
    await noiseClosed;
    const text = new WebSocket(suite.server.wsUrl);
    await new Promise((resolve) => text.once('open', resolve));
    const textClosed = new Promise<number>((resolve) => text.on('close', (code) => resolve(code)));
    text.send('hello');
    expect(await textClosed).toBe(1003);
    await stillServes(other, 'after noise');
    other.provider.destroy();
  });

  it('a message over MAX_MESSAGE_BYTES closes that socket with 1009 and applies nothing', async () => {
    const name = 'acme/quote/oversized';
    const other = await bystander(name);
    const raw = await rawClient(name);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const big = new Y.Doc();
    big.getMap('quote').set('title', 'x'.repeat(MAX_MESSAGE_BYTES * 2));
    raw.ws.send(updateFrame(name, Y.encodeStateAsUpdate(big)));
    expect((await raw.closed).code).toBe(1009);
    await stillServes(other, 'after an oversized message');
    expect(other.doc.getMap('quote').get('title')).toBe('after an oversized message');
    other.provider.destroy();
  });

  it('a client-sent BroadcastStateless frame and a stateless message do not end the process', async () => {
    const name = 'acme/quote/stateless';
    const other = await bystander(name);
    other.provider.sendStateless('{"anything":true}');
    const raw = await rawClient(name);
    await new Promise((resolve) => setTimeout(resolve, 200));
    raw.ws.send(new Uint8Array([...new TextEncoder().encode(String.fromCharCode(name.length) + name), 6, 3, 65, 66, 67]));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await stillServes(other, 'after stateless');
    raw.ws.close();
    other.provider.destroy();
  });
});
