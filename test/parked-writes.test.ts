import { Document, type Connection } from '@hocuspocus/server';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { ParkedWrites } from '../src/persistence/parked-writes.ts';
import { UpdateReach } from '../src/protocol.ts';
import { updateFrom } from './support/documents.ts';


/**
 * A document holding one parked write: `waiting` (a note that goes after the
 * text of `dependency`, which the document has not seen). Stubs stand in for
 * the connection and the commit (unit test: only what Yjs holds is checked).
 */
function parkedDocument() {
  const author = new Y.Doc();
  author.clientID = 1;
  const dependency = updateFrom(author, (doc) => doc.getText('notes').insert(0, 'base'));
  const waiting = updateFrom(author, (doc) => doc.getText('notes').insert(4, ' parked'));
  const document = new Document('acme/quote/parked');
  const parked = new ParkedWrites({ maxBytes: 1 << 20, maxWrites: 100, maxAgeMs: 60_000 }, { committedSoFar: async () => {}, logAlone: async () => {}, dropped: () => {} });
  Y.applyUpdate(document, waiting);
  void parked.park(document, {} as Connection, { update: waiting, userId: 'alice', reach: new UpdateReach(waiting), bytes: waiting.byteLength });
  return { document, parked, dependency };
}

describe('ParkedWrites: what Yjs holds pending, set aside while a change nobody here judged is applied', () => {
  it('an unrelated change cannot release it; what that change parks itself is kept beside it', () => {
    const { document, parked, dependency } = parkedDocument();
    const other = new Y.Doc();
    other.clientID = 2;
    const otherBase = updateFrom(other, (doc) => doc.getMap('quote').set('title', 'T'));
    const otherWaiting = updateFrom(other, (doc) => doc.getMap('quote').set('title', 'T2'));
    parked.setAside(document);
    expect(document.store.pendingStructs).toBeNull();
    Y.applyUpdate(document, otherWaiting);
    expect(parked.putBack(document)).toBe(false);
    // Both wait in the document, as Yjs would have held them: each lands once what it waits for does.
    Y.applyUpdate(document, otherBase);
    expect(document.getMap('quote').get('title')).toBe('T2');
    Y.applyUpdate(document, dependency);
    expect(document.getText('notes').toString()).toBe('base parked');
    expect(document.store.pendingStructs).toBeNull();
  });

  it('a change bringing what it waits for leaves it aside, to be released only once judged', () => {
    const { document, parked, dependency } = parkedDocument();
    parked.setAside(document);
    Y.applyUpdate(document, dependency);
    expect(parked.putBack(document)).toBe(true);
    expect(document.getText('notes').toString()).toBe('base');
    expect(document.store.pendingStructs).toBeNull();
    expect(parked.restoreForRelease(document)).toBe(true);
    Y.applyUpdate(document, Y.encodeStateAsUpdate(new Y.Doc()));
    expect(document.getText('notes').toString()).toBe('base parked');
  });
});
