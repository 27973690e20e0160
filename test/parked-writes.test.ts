import { Document, type Connection } from '@hocuspocus/server';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { ParkedWrites } from '../src/persistence/parked-writes.ts';
import { UpdateReach } from '../src/protocol.ts';
import { updateFrom } from './support/documents.ts';

/** An update that brings nothing: applied, it makes Yjs retry what the document holds pending. */
const NO_CHANGE = Y.encodeStateAsUpdate(new Y.Doc());

/**
 * A document and a write Yjs parks in it: `waiting` (a note that goes after
 * the text of `dependency`, which the document has not seen), taken out by
 * `hold` after its transaction, as the acknowledgement gate does. Stubs stand
 * in for the connection and the commit (unit test: only what Yjs holds is
 * checked).
 */
function parkedDocument() {
  const author = new Y.Doc();
  author.clientID = 1;
  const dependency = updateFrom(author, (doc) => doc.getText('notes').insert(0, 'base'));
  const waiting = updateFrom(author, (doc) => doc.getText('notes').insert(4, ' parked'));
  const document = new Document('acme/quote/parked');
  const parked = new ParkedWrites({ maxBytes: 1 << 20, maxWrites: 100, maxAgeMs: 60_000 }, { committedSoFar: async () => {}, logAlone: async () => {}, dropped: () => {} });
  Y.applyUpdate(document, waiting);
  expect(document.store.pendingStructs).not.toBeNull();
  expect(parked.hold(document)).toBe(false);
  void parked.park(document, {} as Connection, { update: waiting, userId: 'alice', reach: new UpdateReach(waiting), bytes: waiting.byteLength });
  return { document, parked, dependency };
}

/** What a peer that already holds `dependency` takes from the document's answer to its sync request. */
function syncedPeer(document: Y.Doc, dependency: Uint8Array): Y.Doc {
  const peer = new Y.Doc();
  Y.applyUpdate(peer, dependency);
  Y.applyUpdate(peer, Y.encodeStateAsUpdate(document, Y.encodeStateVector(peer)));
  return peer;
}

describe('ParkedWrites: what Yjs parks is kept out of the document until a judged release', () => {
  it('is in no encoding of the document: a peer holding what it waits for does not receive it', () => {
    const { document, dependency } = parkedDocument();
    expect(document.store.pendingStructs).toBeNull();
    expect(syncedPeer(document, dependency).getText('notes').toString()).toBe('base');
  });

  it('an unrelated change cannot release it; what that change parks itself is kept beside it', () => {
    const { document, parked, dependency } = parkedDocument();
    const other = new Y.Doc();
    other.clientID = 2;
    const otherBase = updateFrom(other, (doc) => doc.getMap('quote').set('title', 'T'));
    const otherWaiting = updateFrom(other, (doc) => doc.getMap('quote').set('title', 'T2'));
    Y.applyUpdate(document, otherWaiting);
    expect(parked.hold(document)).toBe(false);
    Y.applyUpdate(document, otherBase);
    expect(parked.hold(document)).toBe(true);
    expect(document.getMap('quote').get('title')).toBe('T');
    // Released: what waited for otherBase lands; what waits for dependency is held again.
    expect(parked.restoreForRelease(document)).toBe(true);
    Y.applyUpdate(document, NO_CHANGE);
    expect(parked.hold(document)).toBe(false);
    expect(document.getMap('quote').get('title')).toBe('T2');
    expect(document.getText('notes').toString()).toBe('');
    Y.applyUpdate(document, dependency);
    expect(parked.hold(document)).toBe(true);
    expect(parked.restoreForRelease(document)).toBe(true);
    Y.applyUpdate(document, NO_CHANGE);
    expect(parked.hold(document)).toBe(false);
    expect(document.getText('notes').toString()).toBe('base parked');
    expect(parked.restoreForRelease(document)).toBe(false);
  });

  it('a change bringing what it waits for leaves it out until it is released', () => {
    const { document, parked, dependency } = parkedDocument();
    Y.applyUpdate(document, dependency);
    expect(parked.hold(document)).toBe(true);
    expect(document.getText('notes').toString()).toBe('base');
    expect(syncedPeer(document, dependency).getText('notes').toString()).toBe('base');
    expect(parked.oldestSender(document)).toBeDefined();
    expect(parked.restoreForRelease(document)).toBe(true);
    Y.applyUpdate(document, NO_CHANGE);
    expect(document.getText('notes').toString()).toBe('base parked');
  });
});
