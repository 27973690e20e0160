import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { acknowledged, connect, synced, type Client } from './support/clients.ts';
import { authFrame, awarenessFrame, awarenessUpdate, frame, queryAwarenessFrame, statelessFrame, syncFrame, updateFrame } from './support/frames.ts';
import { loggedUpdates, openTestDatabase } from './support/inspect.ts';
import { nonJsonLines, RawSocket } from './support/raw-socket.ts';
import { serverForSuite } from './support/suite-server.ts';
import { token } from './support/tokens.ts';
import { addComment } from './support/documents.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_c0c0);
const FRAMES = 12_000;
const SOCKETS_AT_ONCE = 16;
/** Frames one socket sends at most before it is replaced by a fresh one. */
const FRAMES_PER_SOCKET = 150;
const DOCUMENT = 'acme/quote/fuzz';
const OTHER_DOCUMENT = 'acme/quote/fuzz-other';

/** mulberry32: a small, fast PRNG; the same seed gives the same frames. */
function prng(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (below: number) => Math.floor(next() * below);
  return { next, int, pick: <T>(items: readonly T[]): T => items[int(items.length)]! };
}
type Random = ReturnType<typeof prng>;

/** Valid frames of every kind a client sends, to be corrupted. */
function validFrames(editorToken: string): Uint8Array[] {
  const author = new Y.Doc();
  const updates: Uint8Array[] = [];
  author.on('update', (update: Uint8Array) => updates.push(update));
  author.getMap('quote').set('title', 'fuzz');
  author.getText('notes').insert(0, 'fuzzed notes');
  author.getArray('lines').push([new Y.Map([['id', 'l1'], ['quantity', 2]])]);
  author.getText('notes').delete(0, 3);
  const frames: Uint8Array[] = [];
  for (const document of [DOCUMENT, OTHER_DOCUMENT]) {
    frames.push(
      authFrame(document, editorToken),
      syncFrame(document, 0, Y.encodeStateVector(author)),
      syncFrame(document, 1, Y.encodeStateAsUpdate(author)),
      ...updates.map((update) => updateFrame(document, update)),
      awarenessFrame(document, awarenessUpdate([{ client: 4242, clock: 1, state: JSON.stringify({ user: { id: 'fuzz', name: 'Fuzz' }, status: 'editing' }) }])),
      statelessFrame(document, JSON.stringify({ type: 'hello' })),
      queryAwarenessFrame(document),
      frame(document, 7),
    );
  }
  return frames;
}

/**
 * A valid frame corrupted in one to three ways. With `keepAddress` the
 * corruption spares the document name, so that the frame reaches the
 * document; otherwise anything goes (and the socket is likely closed).
 */
function corrupted(random: Random, valid: Uint8Array[], keepAddress: boolean): Uint8Array {
  let bytes = Uint8Array.from(random.pick(valid));
  const from = keepAddress ? 1 + bytes[0]! : 0; // names here are under 128 bytes: a one-byte length
  for (let mutations = 1 + random.int(3); mutations > 0; mutations--) {
    const at = from + random.int(bytes.length - from + 1);
    switch (random.int(6)) {
      case 0: // flip bits of one byte
        if (at < bytes.length) bytes[at]! ^= 1 << random.int(8);
        break;
      case 1: // truncate
        bytes = bytes.slice(0, at);
        break;
      case 2: // insert random bytes
        bytes = Uint8Array.from([...bytes.slice(0, at), ...Array.from({ length: 1 + random.int(8) }, () => random.int(256)), ...bytes.slice(at)]);
        break;
      case 3: // a varint that never ends, or a huge one
        if (at < bytes.length) bytes[at] = 0xff;
        break;
      case 4: // drop a slice
        bytes = Uint8Array.from([...bytes.slice(0, at), ...bytes.slice(at + 1 + random.int(8))]);
        break;
      default: // duplicate a slice
        bytes = Uint8Array.from([...bytes.slice(0, at), ...bytes.slice(at, at + 16), ...bytes.slice(at)]);
    }
  }
  return bytes;
}

/**
 * The frames of one socket: its authentication, then valid frames (a quarter)
 * and frames corrupted after their document name, and, at the end of half of
 * the sockets, one that may close the socket: noise, or corruption anywhere.
 */
function socketFrames(random: Random, valid: Uint8Array[], count: number): Uint8Array[] {
  const frames = [valid[0]!];
  while (frames.length < count - 1) frames.push(random.next() < 0.25 ? random.pick(valid) : corrupted(random, valid, true));
  if (random.next() < 0.5) frames.push(random.next() < 0.5 ? Uint8Array.from({ length: random.int(64) }, () => random.int(256)) : corrupted(random, valid, false));
  return frames;
}

describe('fuzzed frames', () => {
  // Fuzzed under the default socket budgets (test servers lift them otherwise).
  const suite = serverForSuite({ SOCKET_MESSAGES_PER_SECOND: '200', SOCKET_BYTES_PER_SECOND: String(1024 * 1024) });

  it(`${FRAMES} random and corrupted frames on many sockets: the server stays up, a provider's edits all land, logs stay JSON`, async () => {
    console.log(`fuzz seed ${SEED} (set FUZZ_SEED to replay another)`);
    const random = prng(SEED);
    const editorToken = await token({ sub: 'fuzzer' });
    const valid = validFrames(editorToken);

    // A legitimate editor types into the fuzzed document all along.
    const writer: Client = connect(suite.server.wsUrl, DOCUMENT, await token({ sub: 'alice' }));
    await synced(writer, 30_000);
    const markers: string[] = [];
    // Its comments: a part of the document no valid fuzzed frame writes.
    const type = () => {
      const marker = `<${markers.length}>`;
      markers.push(marker);
      addComment(writer.doc, { id: `legit-${markers.length}`, body: marker });
    };
    const typed = (doc: Y.Doc) =>
      doc
        .getArray<Y.Map<unknown>>('comments')
        .toArray()
        .filter((comment) => String(comment.get('id')).startsWith('legit-'))
        .map((comment) => comment.get('body'))
        .join('');
    const typing = setInterval(type, 50);

    // Every socket's frames are drawn from the seed before any is sent: the same seed sends the same frames.
    const plans: Uint8Array[][] = [];
    for (let planned = 0; planned < FRAMES; planned += plans.at(-1)!.length) plans.push(socketFrames(random, valid, FRAMES_PER_SOCKET));
    const sockets = plans.length;
    let sent = 0;
    const fuzzOneSocket = async (frames: Uint8Array[]) => {
      const socket = await RawSocket.open(suite.server.wsUrl);
      for (const [i, bytes] of frames.entries()) {
        socket.send(bytes);
        sent += 1;
        // Let the server's answers in now and then, as a real client would.
        if (i % 10 === 9) await new Promise((resolve) => setImmediate(resolve));
      }
      socket.close();
    };
    try {
      await Promise.all(
        Array.from({ length: SOCKETS_AT_ONCE }, async () => {
          for (let plan = plans.shift(); plan; plan = plans.shift()) await fuzzOneSocket(plan);
        }),
      );
      expect((await suite.server.get('/healthz')).status).toBe(200);
    } finally {
      clearInterval(typing);
    }
    for (let i = 0; i < 10; i++) type();
    await acknowledged(writer, 60_000);
    const metrics = await suite.server.metrics();
    const refused = [...metrics].filter(([series]) => series.startsWith('concord_refusals_total{')).map(([series, count]) => `${series.slice(22, -1)} ${count}`);
    console.log(`fuzz: ${sent} frames on ${sockets} sockets, ${markers.length} edits by the provider; refusals: ${refused.join(', ')}`);

    expect(sent).toBeGreaterThanOrEqual(FRAMES);
    // The frames reached the server's checks (most malformed frames close their document once, then wait for authentication).
    expect((metrics.get('concord_refusals_total{code="bad-frame"}') ?? 0) + (metrics.get('concord_refusals_total{code="bad-update"}') ?? 0)).toBeGreaterThan(FRAMES / 20);
    expect(suite.server.running).toBe(true);
    expect((await suite.server.get('/healthz')).status).toBe(200);
    expect(suite.server.logs).not.toMatch(/unhandled|uncaught/i);
    expect(nonJsonLines(suite.server.logs)).toEqual([]);
    const expected = markers.join('');
    expect(typed(writer.doc)).toBe(expected);
    writer.provider.destroy();

    // Everything the provider had acknowledged is in the log.
    await suite.server.stop();
    const db = await openTestDatabase(suite.storage);
    try {
      const replayed = new Y.Doc();
      for (const row of await loggedUpdates(db, 'acme', DOCUMENT)) Y.applyUpdate(replayed, row.update);
      expect(typed(replayed)).toBe(expected);
    } finally {
      await db.close();
    }
  });
});
