import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { applyTailToCompact, encodeCompact } from '../src/persistence/compact.ts';
import { seeded } from './support/random-edits.ts';

/** Replicas with the client IDs given, each edit of one relayed to the others at once; `log` holds every update in order. */
function replicas(...clientIds: number[]) {
  const docs = clientIds.map((clientId) => {
    const doc = new Y.Doc();
    doc.clientID = clientId;
    return doc;
  });
  const log: Uint8Array[] = [];
  const online = new Set(docs);
  for (const doc of docs) {
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === 'relay') return;
      log.push(update);
      for (const other of online) if (other !== doc) Y.applyUpdate(other, update, 'relay');
    });
  }
  return { docs, log, offline: (doc: Y.Doc) => online.delete(doc) };
}

function fromUpdates(updates: Uint8Array[]): Y.Doc {
  const doc = new Y.Doc();
  for (const update of updates) Y.applyUpdate(doc, update);
  return doc;
}

/** The compact state of the first `count` updates of `log`, and the updates after it. */
function splitAt(log: Uint8Array[], count: number) {
  return { compact: encodeCompact(fromUpdates(log.slice(0, count))), tail: log.slice(count) };
}

/** An edit of a quote-like document: header values and line values set over, lines added and removed, notes typed and cut, a report's attributes and paragraphs. */
function edit(doc: Y.Doc, next: () => number): void {
  const lines = doc.getArray<Y.Map<unknown>>('lines');
  const notes = doc.getText('notes');
  const body = doc.getXmlFragment('body');
  const roll = next();
  if (roll < 0.35 && lines.length > 0) lines.get(Math.floor(next() * lines.length)).set(next() < 0.5 ? 'quantity' : 'unitPrice', Math.floor(next() * 100));
  else if (roll < 0.5) doc.getMap('quote').set(next() < 0.5 ? 'status' : 'discountPct', Math.floor(next() * 10));
  else if (roll < 0.7) notes.insert(Math.floor(next() * (notes.length + 1)), 'xyz'[Math.floor(next() * 3)]!);
  else if (roll < 0.78 && notes.length > 3) notes.delete(Math.floor(next() * (notes.length - 2)), 2);
  else if (roll < 0.85) {
    const line = new Y.Map<unknown>();
    line.set('quantity', 1);
    lines.insert(Math.floor(next() * (lines.length + 1)), [line]);
  } else if (roll < 0.9 && lines.length > 1) lines.delete(Math.floor(next() * lines.length), 1);
  else if (roll < 0.95 || body.length === 0) {
    const paragraph = new Y.XmlElement('paragraph');
    paragraph.insert(0, [new Y.XmlText('p')]);
    body.insert(body.length, [paragraph]);
  } else (body.get(Math.floor(next() * body.length)) as Y.XmlElement).setAttribute('align', String(Math.floor(next() * 3)));
}

describe('compact states: version reads from a checkpoint without its overwritten values', () => {
  it('reads as the exact state, is smaller, and leaves the document it was encoded from as it was', () => {
    const { docs, log } = replicas(1, 2, 3);
    const next = seeded(7);
    for (let index = 0; index < 3_000; index++) edit(docs[Math.floor(next() * docs.length)]!, next);
    const exact = fromUpdates(log);
    const state = Y.encodeStateAsUpdate(exact);

    const compact = encodeCompact(exact);
    expect(Buffer.from(Y.encodeStateAsUpdate(exact))).toEqual(Buffer.from(state));
    const read = fromUpdates([compact]);
    expect(read.toJSON()).toEqual(exact.toJSON());
    expect(compact.length).toBeLessThan(state.length);
    // Of each key's values only the current one is left, written as the key's first (a value with an origin is written without its key).
    const keys =
      exact.getMap('quote').size +
      exact.getArray<Y.Map<unknown>>('lines').toArray().reduce((sum, line) => sum + line.size, 0) +
      exact.getXmlFragment('body').toArray().reduce((sum, paragraph) => sum + Object.keys((paragraph as Y.XmlElement).getAttributes()).length, 0);
    const values = (update: Uint8Array) => Y.decodeUpdate(update).structs.filter((struct) => struct instanceof Y.Item && struct.parentSub !== null).length;
    expect(values(compact)).toBe(keys);
    expect(Y.decodeUpdate(compact).structs.length).toBeLessThan(Y.decodeUpdate(state).structs.length);
  });

  it('takes the edits made after it as the exact state does', () => {
    const { docs, log } = replicas(1, 2, 3);
    const next = seeded(11);
    for (let index = 0; index < 2_000; index++) edit(docs[Math.floor(next() * docs.length)]!, next);
    const checkpointed = log.length;
    for (let index = 0; index < 500; index++) edit(docs[Math.floor(next() * docs.length)]!, next);

    const { compact, tail } = splitAt(log, checkpointed);
    const read = fromUpdates([compact]);
    expect(applyTailToCompact(read, tail)).toBe(true);
    const exact = fromUpdates(log);
    expect(read.toJSON()).toEqual(exact.toJSON());
  });

  it('refuses any tail when it holds updates still waiting for others (their references were never checked)', () => {
    const { docs, log } = replicas(1, 2);
    docs[0]!.getMap('quote').set('status', 'draft');
    docs[1]!.getMap('quote').set('status', 'sent');
    // A checkpoint that got the second update before the first it depends on.
    const waiting = fromUpdates([log[1]!]);
    expect(waiting.store.pendingStructs).not.toBeNull();
    const read = fromUpdates([encodeCompact(waiting)]);
    expect(applyTailToCompact(read, [log[0]!])).toBe(false);
  });

  it('refuses a tail that places a value after one it left out (a client setting it from an older version)', () => {
    // Client 9 goes offline having seen status "draft"; 2 sets "sent" meanwhile.
    const { docs, log, offline } = replicas(1, 2, 9);
    const [first, second, behind] = docs as [Y.Doc, Y.Doc, Y.Doc];
    first.getMap('quote').set('status', 'draft');
    offline(behind);
    second.getMap('quote').set('status', 'sent');
    const checkpointed = log.length;
    behind.getMap('quote').set('status', 'won');
    const { compact, tail } = splitAt(log, checkpointed);

    // Placed after "draft" beside "sent", the higher client ID's value wins; with "draft" left out it would be lost.
    expect(fromUpdates(log).getMap('quote').get('status')).toBe('won');
    expect(fromUpdates([compact, ...tail]).getMap('quote').get('status')).toBe('sent');
    expect(applyTailToCompact(fromUpdates([compact]), tail)).toBe(false);
  });

  it('refuses a tail that sets a key it holds values of without an origin (a client that never saw the key)', () => {
    // Client 5 is offline before the key is first set by 9, then by 2.
    const { docs, log, offline } = replicas(9, 2, 5);
    const [first, second, behind] = docs as [Y.Doc, Y.Doc, Y.Doc];
    offline(behind);
    first.getMap('quote').set('status', 'draft');
    second.getMap('quote').set('status', 'sent');
    const checkpointed = log.length;
    behind.getMap('quote').set('status', 'won');
    const { compact, tail } = splitAt(log, checkpointed);

    // Among values without an origin the lower client ID goes first: 5 lands before 9's "draft" and loses, but would land after 2's "sent" and win.
    expect(fromUpdates(log).getMap('quote').get('status')).toBe('sent');
    expect(fromUpdates([compact, ...tail]).getMap('quote').get('status')).toBe('won');
    expect(applyTailToCompact(fromUpdates([compact]), tail)).toBe(false);
  });
});
