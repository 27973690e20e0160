import { Document, type Connection } from '@hocuspocus/server';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as Y from 'yjs';
import { ConcordError } from '../src/errors.ts';
import { ParkedWrites, type ParkingLimits } from '../src/persistence/parked-writes.ts';
import { UpdateReach } from '../src/protocol.ts';
import { updateFrom } from './support/documents.ts';

/** An update that brings nothing: applied, it makes Yjs retry what the document holds pending. */
const NO_CHANGE = Y.encodeStateAsUpdate(new Y.Doc());

/** Each stand-in connection's user. */
const users = new WeakMap<Connection, string>();

/** Stands in for a connection of `user` open on `document` (unit test: only what Yjs holds, and what each write is answered, are checked). */
function connection(document: Document, user = `user-${Math.random()}`): Connection {
  // What the document's broadcasts use of it.
  const stand = { messageAddress: document.name, send: () => {} } as unknown as Connection;
  users.set(stand, user);
  document.addConnection(stand);
  return stand;
}

function parkedWrites(limits: Partial<ParkingLimits> = {}) {
  const dropped: Array<{ connection: Connection; reason: unknown }> = [];
  const parked = new ParkedWrites(
    { maxBytes: 1 << 20, maxWrites: 100, maxAgeMs: 60_000, ...limits },
    { userOf: (connection) => users.get(connection)!, committedSoFar: async () => {}, dropped: (_document, connection, reason) => dropped.push({ connection, reason }) },
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
  const sender = connection(document);
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
    const otherSender = connection(document);
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
    expect(dropped).toEqual([{ connection: sender, reason: expect.objectContaining({ code: 'document-frozen' }) }]);
  });

  it('a parked deletion is not answered when what it deletes arrives, only once it is released', async () => {
    const writer = new Y.Doc();
    writer.clientID = 3;
    const content = updateFrom(writer, (doc) => doc.getText('notes').insert(0, 'gone soon'));
    const deletion = updateFrom(writer, (doc) => doc.getText('notes').delete(0, 5));
    const document = new Document('acme/quote/parked-deletion');
    const { parked } = parkedWrites();
    const sender = connection(document);
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

/** A write of a client whose first change the document never received: Yjs parks it. */
function waitingWrite(client: number, text: string) {
  const author = new Y.Doc();
  author.clientID = client;
  const dependency = updateFrom(author, (doc) => doc.getText('notes').insert(0, '#'));
  const waiting = updateFrom(author, (doc) => doc.getText('notes').insert(1, text));
  return { dependency, waiting };
}

describe('ParkedWrites: passing a bound drops the parked content of the user holding the most (or of the connection too old); closing, of that connection', () => {
  afterEach(() => vi.useRealTimers());

  it('a connection taking the document past MAX_PENDING_WRITES loses its own parked writes; another connection keeps its one', async () => {
    const document = new Document('acme/quote/bounded');
    const { parked, dropped } = parkedWrites({ maxWrites: 2 });
    const [patient, flooder] = [connection(document), connection(document)];
    const kept = waitingWrite(1, 'kept');
    const patientWrite = write(document, parked, patient, kept.waiting);
    const floods = [waitingWrite(2, 'a'), waitingWrite(3, 'b')].map(({ waiting }) => write(document, parked, flooder, waiting));
    expect(dropped).toEqual([{ connection: flooder, reason: 'MAX_PENDING_WRITES' }]);
    // Holding nothing any more (a release's judge answering after its close, say), it is not reported twice.
    parked.dropParkedBy(document, flooder, new ConcordError('document-frozen', 'frozen'));
    expect(dropped).toHaveLength(1);
    Y.applyUpdate(document, kept.dependency);
    expect(parked.hold(document, null)).toBe(true);
    expect(parked.nextRelease(document)).toBe(patient);
    release(document, parked, patient);
    expect(document.getText('notes').toString()).toBe('#kept');
    await settled();
    expect(patientWrite.answer.value).toBe(true);
    expect(floods.map(({ answer }) => answer.value)).toEqual([false, false]);
  });

  it('a write passing the bound drops the parked writes of the connection holding the most, not the writer\'s', async () => {
    const document = new Document('acme/quote/shed');
    const { parked, dropped } = parkedWrites({ maxWrites: 2 });
    const [patient, flooder] = [connection(document), connection(document)];
    const floods = [waitingWrite(2, 'a'), waitingWrite(3, 'b')].map(({ waiting }) => write(document, parked, flooder, waiting));
    const kept = waitingWrite(1, 'kept');
    expect(parked.makeRoom(document, patient, kept.waiting.byteLength)).toBeNull();
    expect(dropped).toEqual([{ connection: flooder, reason: 'MAX_PENDING_WRITES' }]);
    const patientWrite = write(document, parked, patient, kept.waiting);
    Y.applyUpdate(document, kept.dependency);
    expect(parked.hold(document, null)).toBe(true);
    release(document, parked, patient);
    expect(document.getText('notes').toString()).toBe('#kept');
    await settled();
    expect(patientWrite.answer.value).toBe(true);
    expect(floods.map(({ answer }) => answer.value)).toEqual([false, false]);
    // Holding the most itself, a writer is refused: nothing of another's goes.
    write(document, parked, patient, waitingWrite(4, 'c').waiting);
    write(document, parked, flooder, waitingWrite(5, 'd').waiting);
    expect(parked.makeRoom(document, flooder, 1)).toBe('MAX_PENDING_WRITES');
    expect(parked.makeRoom(document, patient, 1)).toBe('MAX_PENDING_WRITES');
    expect(dropped).toHaveLength(1);
  });

  it('a tie goes against the writer', () => {
    const document = new Document('acme/quote/shed-tie');
    const { parked, dropped } = parkedWrites({ maxWrites: 3 });
    const [patient, flooder] = [connection(document), connection(document)];
    write(document, parked, patient, waitingWrite(1, 'a').waiting);
    write(document, parked, flooder, waitingWrite(2, 'b').waiting);
    write(document, parked, flooder, waitingWrite(3, 'c').waiting);
    // With its write, the patient would hold two, as the flooder does.
    expect(parked.makeRoom(document, patient, 1)).toBe('MAX_PENDING_WRITES');
    expect(dropped).toEqual([]);
  });

  it("counts a user's connections together: one user's many connections cannot get another user's writes dropped", () => {
    const document = new Document('acme/quote/shed-per-user');
    const { parked, dropped } = parkedWrites({ maxWrites: 4 });
    const bea = connection(document, 'bea');
    const mallory = [connection(document, 'mallory'), connection(document, 'mallory'), connection(document, 'mallory')];
    write(document, parked, bea, waitingWrite(1, 'a').waiting);
    write(document, parked, bea, waitingWrite(2, 'b').waiting);
    write(document, parked, mallory[0]!, waitingWrite(3, 'c').waiting);
    write(document, parked, mallory[1]!, waitingWrite(4, 'd').waiting);
    // Bea's one connection holds the most; mallory's three hold more.
    expect(parked.makeRoom(document, mallory[2]!, 1)).toBe('MAX_PENDING_WRITES');
    expect(dropped).toEqual([]);

    // The other way round: bea holding less, every connection of mallory's goes.
    const other = new Document('acme/quote/shed-per-user-2');
    const [beaThere, malloryFirst, mallorySecond] = [connection(other, 'bea'), connection(other, 'mallory'), connection(other, 'mallory')];
    write(other, parked, beaThere, waitingWrite(1, 'a').waiting);
    write(other, parked, malloryFirst, waitingWrite(2, 'b').waiting);
    write(other, parked, malloryFirst, waitingWrite(3, 'c').waiting);
    write(other, parked, mallorySecond, waitingWrite(4, 'd').waiting);
    expect(parked.makeRoom(other, beaThere, 1)).toBeNull();
    expect(dropped).toEqual([
      { connection: malloryFirst, reason: 'MAX_PENDING_WRITES' },
      { connection: mallorySecond, reason: 'MAX_PENDING_WRITES' },
    ]);
  });

  it('past MAX_PENDING_AGE_MS only the connections whose oldest parked write is that old are dropped', () => {
    vi.useFakeTimers();
    const document = new Document('acme/quote/aged');
    const { parked, dropped } = parkedWrites({ maxAgeMs: 1_000 });
    const [early, late] = [connection(document), connection(document)];
    write(document, parked, early, waitingWrite(1, 'early').waiting);
    vi.advanceTimersByTime(600);
    write(document, parked, late, waitingWrite(2, 'late').waiting);
    vi.advanceTimersByTime(400);
    expect(dropped).toEqual([{ connection: early, reason: 'MAX_PENDING_AGE_MS' }]);
    vi.advanceTimersByTime(599);
    expect(dropped).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(dropped).toEqual([
      { connection: early, reason: 'MAX_PENDING_AGE_MS' },
      { connection: late, reason: 'MAX_PENDING_AGE_MS' },
    ]);
  });

  it("a closed connection's parked content goes unanswered, its sender told nothing, and what it waited for releases nothing", async () => {
    const { document, parked, dropped, sender, dependency, answer } = parkedDocument();
    parked.connectionClosed(document, sender);
    Y.applyUpdate(document, dependency);
    expect(parked.hold(document, null)).toBe(false);
    expect(document.getText('notes').toString()).toBe('base');
    await settled();
    expect(answer.value).toBe(false);
    expect(dropped).toEqual([]);
  });

  it('what a closed connection\'s writes still queued park is not kept (Hocuspocus applies them after the close)', async () => {
    const { document, parked, sender } = parkedDocument();
    document.removeConnection(sender);
    parked.connectionClosed(document, sender);
    const late = waitingWrite(4, 'late');
    const lateWrite = write(document, parked, sender, late.waiting);
    Y.applyUpdate(document, late.dependency);
    expect(parked.hold(document, null)).toBe(false);
    expect(document.getText('notes').toString()).toBe('#');
    await settled();
    expect(lateWrite.answer.value).toBe(false);
  });
});
