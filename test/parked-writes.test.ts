import { Document, type Connection } from '@hocuspocus/server';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { ConcordError } from '../src/errors.ts';
import { ParkedWrites } from '../src/persistence/parked-writes.ts';
import { UpdateReach } from '../src/protocol.ts';
import { updateFrom } from './support/documents.ts';

/** An update that brings nothing: applied, it makes Yjs retry what the document holds pending. */
const NO_CHANGE = Y.encodeStateAsUpdate(new Y.Doc());

/** Stands in for a connection (unit test: only what Yjs holds, and what each write is answered, are checked). */
const connection = (): Connection => ({}) as Connection;

function parkedWrites() {
  const dropped: Array<{ connections: Connection[]; reason: unknown }> = [];
  const parked = new ParkedWrites(
    { maxBytes: 1 << 20, maxWrites: 100, maxAgeMs: 60_000 },
    { committedSoFar: async () => {}, dropped: (_document, connections, reason) => dropped.push({ connections, reason }) },
  );
  return { parked, dropped };
}

/** Applies `update` as `sender`'s write, and keeps what Yjs parked of it as the acknowledgement gate does; its answer, once known. */
function write(document: Document, parked: ParkedWrites, sender: Connection, update: Uint8Array) {
  Y.applyUpdate(document, update);
  const releasable = parked.hold(document, sender);
  const answer = { value: undefined as boolean | undefined };
  void parked.park(document, sender, { reach: new UpdateReach(update), bytes: update.byteLength }).then((value) => (answer.value = value));
  return { releasable, answer };
}

/** Releases `parkedBy`'s held content as the gate does once the rules allowed it, and answers what went in. */
function release(document: Document, parked: ParkedWrites, parkedBy: Connection | null): void {
  expect(parked.restoreForRelease(document, parkedBy)).toBe(true);
  Y.applyUpdate(document, NO_CHANGE);
  parked.hold(document, parkedBy);
  parked.settleHeld(document);
}

/** A document and a note Yjs parks in it: it goes after the text of `dependency`, which the document has not seen. */
function parkedDocument() {
  const author = new Y.Doc();
  author.clientID = 1;
  const dependency = updateFrom(author, (doc) => doc.getText('notes').insert(0, 'base'));
  const waiting = updateFrom(author, (doc) => doc.getText('notes').insert(4, ' parked'));
  const document = new Document('acme/quote/parked');
  const { parked, dropped } = parkedWrites();
  const sender = connection();
  const parkedWrite = write(document, parked, sender, waiting);
  expect(parkedWrite.releasable).toBe(false);
  return { document, parked, dropped, sender, dependency, answer: parkedWrite.answer };
}

/** What a peer that already holds `dependency` takes from the document's answer to its sync request. */
function syncedPeer(document: Y.Doc, dependency: Uint8Array): Y.Doc {
  const peer = new Y.Doc();
  Y.applyUpdate(peer, dependency);
  Y.applyUpdate(peer, Y.encodeStateAsUpdate(document, Y.encodeStateVector(peer)));
  return peer;
}

const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('ParkedWrites: what Yjs parks is kept out of the document until a judged release', () => {
  it('is in no encoding of the document: a peer holding what it waits for does not receive it', () => {
    const { document, dependency } = parkedDocument();
    expect(document.store.pendingStructs).toBeNull();
    expect(syncedPeer(document, dependency).getText('notes').toString()).toBe('base');
  });

  it('a change bringing what it waits for leaves it out until it is released as its sender', async () => {
    const { document, parked, sender, dependency, answer } = parkedDocument();
    Y.applyUpdate(document, dependency);
    expect(parked.hold(document, null)).toBe(true);
    parked.settleHeld(document);
    expect(document.getText('notes').toString()).toBe('base');
    expect(syncedPeer(document, dependency).getText('notes').toString()).toBe('base');
    expect(parked.nextRelease(document)).toBe(sender);
    release(document, parked, sender);
    expect(document.getText('notes').toString()).toBe('base parked');
    expect(parked.nextRelease(document)).toBeUndefined();
    await settled();
    expect(answer.value).toBe(true);
  });

  it('keeps each sender apart: an unrelated change releases nothing, each set is released or dropped as its own', async () => {
    const { document, parked, dropped, sender, dependency, answer } = parkedDocument();
    const other = new Y.Doc();
    other.clientID = 2;
    const otherBase = updateFrom(other, (doc) => doc.getMap('quote').set('title', 'T'));
    const otherWaiting = updateFrom(other, (doc) => doc.getMap('quote').set('title', 'T2'));
    const otherSender = connection();
    const otherWrite = write(document, parked, otherSender, otherWaiting);
    expect(otherWrite.releasable).toBe(false);
    Y.applyUpdate(document, otherBase);
    expect(parked.hold(document, null)).toBe(true);
    expect(parked.nextRelease(document)).toBe(otherSender);
    expect(document.getMap('quote').get('title')).toBe('T');
    release(document, parked, otherSender);
    expect(document.getMap('quote').get('title')).toBe('T2');
    // The first sender's note still waits, out of the document; refused, only its writes go.
    expect(document.getText('notes').toString()).toBe('');
    Y.applyUpdate(document, dependency);
    expect(parked.hold(document, null)).toBe(true);
    parked.dropParkedBy(document, sender, new ConcordError('document-frozen', 'frozen'));
    expect(document.store.pendingStructs).toBeNull();
    expect(parked.nextRelease(document)).toBeUndefined();
    await settled();
    expect(otherWrite.answer.value).toBe(true);
    expect(answer.value).toBe(false);
    expect(dropped).toEqual([{ connections: [sender], reason: expect.objectContaining({ code: 'document-frozen' }) }]);
  });

  it('a parked deletion is not answered when what it deletes arrives, only once it is released', async () => {
    const writer = new Y.Doc();
    writer.clientID = 3;
    const content = updateFrom(writer, (doc) => doc.getText('notes').insert(0, 'gone soon'));
    const deletion = updateFrom(writer, (doc) => doc.getText('notes').delete(0, 5));
    const document = new Document('acme/quote/parked-deletion');
    const { parked } = parkedWrites();
    const sender = connection();
    const { answer } = write(document, parked, sender, deletion);
    expect(document.store.pendingDs).toBeNull();
    Y.applyUpdate(document, content);
    expect(parked.hold(document, null)).toBe(true);
    // The deleted range is in the document now, the deletion not yet applied: its write is not answered.
    parked.settleHeld(document);
    await settled();
    expect(answer.value).toBeUndefined();
    expect(document.getText('notes').toString()).toBe('gone soon');
    release(document, parked, sender);
    expect(document.getText('notes').toString()).toBe('soon');
    await settled();
    expect(answer.value).toBe(true);
  });
});
