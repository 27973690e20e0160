import * as encoding from 'lib0/encoding';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { commenterMay, commenterMayApply } from '../src/auth/access.ts';
import { structClients, wroteOnlyUnder } from '../src/auth/client-owners.ts';
import { describeEffect, describeWrites, type Write } from '../src/documents/update-scope.ts';
import { UpdateReach } from '../src/protocol.ts';
import { updateFrom } from './support/documents.ts';

/** The root types an update would change. */
function rootsTouched(doc: Y.Doc, update: Uint8Array): Set<string> | null {
  const writes = describeWrites(doc, update);
  return writes && new Set(writes.map((write) => write.root));
}

/** Whether a commenter (carl) may send what `edit` does to a replica of `server`. */
function commenterMaySend(server: Y.Doc, edit: (replica: Y.Doc) => void): boolean {
  const replica = replicaOf(server);
  edit(replica);
  const writes = describeWrites(server, Y.encodeStateAsUpdate(replica, Y.encodeStateVector(server)));
  return writes !== null && writes.every((write) => commenterMay(write, 'carl'));
}


function comment(fields: Record<string, unknown>): Y.Map<unknown> {
  return new Y.Map(Object.entries(fields));
}

/** A server-side doc an editor wrote: notes, an overwritten title (a deletion), one comment. */
function seeded() {
  const editor = new Y.Doc();
  editor.clientID = 1000;
  editor.getText('notes').insert(0, 'hello');
  editor.getMap('quote').set('title', 'A');
  editor.getMap('quote').set('title', 'B');
  editor.getArray('comments').push([new Y.Map([['id', 'c1'], ['body', 'first']])]);
  const server = new Y.Doc();
  Y.applyUpdate(server, Y.encodeStateAsUpdate(editor));
  return { editor, server };
}

/** A replica of the server, as a commenter's provider holds it. */
function replicaOf(server: Y.Doc): Y.Doc {
  const replica = new Y.Doc();
  Y.applyUpdate(replica, Y.encodeStateAsUpdate(server));
  return replica;
}

describe('describeWrites: what an update would change, without applying it', () => {
  it('a comment, a reply and a resolve touch only comments, also as a sync message carrying the whole delete set', () => {
    const { server } = seeded();
    const commenter = replicaOf(server);
    commenter.getArray<Y.Map<unknown>>('comments').push([new Y.Map([['id', 'c2'], ['parentId', 'c1']])]);
    commenter.getArray<Y.Map<unknown>>('comments').get(0).set('resolved', true);
    const syncStep2 = Y.encodeStateAsUpdate(commenter, Y.encodeStateVector(server));
    expect(rootsTouched(server, syncStep2)).toEqual(new Set(['comments']));
    // Resending what the server holds changes nothing.
    expect(rootsTouched(server, Y.encodeStateAsUpdate(server))).toEqual(new Set());
  });

  it('names every root a mixed update touches, including through a deletion', () => {
    const { server } = seeded();
    const writer = replicaOf(server);
    const before = Y.encodeStateVector(writer);
    writer.transact(() => {
      writer.getArray('comments').push(['x']);
      writer.getText('notes').delete(0, 1);
    });
    expect(rootsTouched(server, Y.encodeStateAsUpdate(writer, before))).toEqual(new Set(['comments', 'notes']));
  });

  it('cannot be fooled by deleting content the server does not have yet', () => {
    const { editor, server } = seeded();
    const deleteAhead = encoding.createEncoder();
    encoding.writeVarUint(deleteAhead, 0); // no structs
    encoding.writeVarUint(deleteAhead, 1); // one client in the delete set
    encoding.writeVarUint(deleteAhead, editor.clientID);
    encoding.writeVarUint(deleteAhead, 1);
    encoding.writeVarUint(deleteAhead, Y.getState(editor.store, editor.clientID));
    encoding.writeVarUint(deleteAhead, 100_000);
    expect(rootsTouched(server, encoding.toUint8Array(deleteAhead))).toBeNull();
  });

  it('refuses to guess about a struct that overlaps what the server holds (Yjs would re-anchor it after that client\'s last item)', () => {
    const { server } = seeded();
    const typist = new Y.Doc();
    typist.clientID = 2000;
    typist.getText('notes').insert(0, 'abc');
    Y.applyUpdate(server, Y.encodeStateAsUpdate(typist));
    const overlapping = encoding.createEncoder();
    encoding.writeVarUint(overlapping, 1); // one client
    encoding.writeVarUint(overlapping, 1); // one struct
    encoding.writeVarUint(overlapping, 2000);
    encoding.writeVarUint(overlapping, Y.getState(server.store, 2000) - 1);
    encoding.writeUint8(overlapping, 4); // a string, no origins, parent given by name
    encoding.writeVarUint(overlapping, 1);
    encoding.writeVarString(overlapping, 'comments');
    encoding.writeVarString(overlapping, 'c!!');
    encoding.writeVarUint(overlapping, 0); // empty delete set
    expect(rootsTouched(server, encoding.toUint8Array(overlapping))).toBeNull();
  });

  it('refuses to guess about an update that depends on content the server lacks', () => {
    const { server } = seeded();
    const writer = replicaOf(server);
    writer.getArray('comments').push(['first']);
    const skipped = Y.encodeStateVector(writer);
    writer.getArray('comments').push(['second']);
    expect(rootsTouched(server, Y.encodeStateAsUpdate(writer, skipped))).toBeNull();
  });

  it('places thousands of chained items in one linear pass', () => {
    const { server } = seeded();
    const writer = replicaOf(server);
    const before = Y.encodeStateVector(writer);
    const comments = writer.getArray<Y.Map<unknown>>('comments');
    for (let index = 0; index < 4000; index++) comments.insert(index % 2 ? comments.length : 0, [new Y.Map([['id', `c${index}`]])]);
    expect(rootsTouched(server, Y.encodeStateAsUpdate(writer, before))).toEqual(new Set(['comments']));
  });
});

describe('describeEffect: what applying an update would change, content Yjs releases included', () => {
  /**
   * One writer under two clientIDs. Under the second it sends a run that waits
   * for the first's comment (its own comment after it, then the status), then
   * a plain comment for the same clocks; the first's comment then arrives.
   */
  function heldBehindAClash() {
    const { server } = seeded();
    const first = replicaOf(server);
    first.clientID = 2001;
    const before = Y.encodeStateVector(first);
    first.getArray('comments').push([comment({ id: 'c2', body: 'from the first' })]);
    const released = Y.encodeStateAsUpdate(first, before);
    const waiting = replicaOf(first);
    waiting.clientID = 2002;
    waiting.getArray('comments').push([comment({ id: 'c3', body: 'after the first' })]);
    waiting.getMap('quote').set('status', 'accepted');
    const held = Y.encodeStateAsUpdate(waiting, Y.encodeStateVector(first));
    const plain = replicaOf(server);
    plain.clientID = 2002;
    plain.getArray('comments').push([comment({ id: 'c3', body: 'plain' })]);
    return { server, held, plain: Y.encodeStateAsUpdate(plain, Y.encodeStateVector(server)), released };
  }

  const touched = (writes: Write[]) => new Set(writes.map((write) => `${write.root}.${write.topKey ?? ''}`));

  it('names a write Yjs held pending that the update releases, though the same client sent other content for the clocks before it', () => {
    const { server, held, plain, released } = heldBehindAClash();
    expect(describeEffect(server, held)).toEqual([]);
    Y.applyUpdate(server, held);
    expect(touched(describeEffect(server, plain))).toEqual(new Set(['comments.']));
    Y.applyUpdate(server, plain);
    expect(server.store.pendingStructs).not.toBeNull();
    const effect = touched(describeEffect(server, released));
    Y.applyUpdate(server, released);
    // What Yjs did: the status, held until now, came with the first's comment.
    expect(server.getMap('quote').get('status')).toBe('accepted');
    expect(effect).toEqual(new Set(['comments.', 'quote.status']));
  });

  it('names a parked deletion of content the doc came to hold while it was kept out (put back for its judged release): any update releases it', () => {
    const { server } = seeded();
    const writer = replicaOf(server);
    writer.clientID = 2003;
    const content = updateFrom(writer, (doc) => doc.getMap('quote').set('customerId', 'c-1'));
    const deletion = updateFrom(writer, (doc) => doc.getMap('quote').delete('customerId'));
    Y.applyUpdate(server, deletion);
    const parked = server.store.pendingDs;
    expect(parked).not.toBeNull();
    server.store.pendingDs = null;
    Y.applyUpdate(server, content);
    server.store.pendingDs = parked;
    const nothing = Y.encodeStateAsUpdate(new Y.Doc());
    const effect = describeEffect(server, nothing);
    Y.applyUpdate(server, nothing);
    // What Yjs did: the parked deletion went with the next update.
    expect(server.getMap('quote').has('customerId')).toBe(false);
    expect(effect.map((write) => [write.root, write.topKey, write.deletion])).toEqual([['quote', 'customerId', true]]);
  });
});

describe('commenterMay: add comments (as themselves), reply and resolve, nothing else', () => {
  it('allows a comment, a reply and a resolve, sent together as a sync message with the whole delete set', () => {
    const { server } = seeded();
    expect(
      commenterMaySend(server, (replica) => {
        const comments = replica.getArray<Y.Map<unknown>>('comments');
        comments.push([comment({ id: 'c2', authorId: 'carl', body: 'why?', parentId: null, resolved: false })]);
        comments.push([comment({ id: 'c3', authorId: 'carl', body: 'because', parentId: 'c2' })]);
        comments.get(0).set('resolved', true);
        comments.get(0).set('resolved', false);
      }),
    ).toBe(true);
  });

  it('refuses a comment in someone else\'s name, editing or removing a comment, and anything outside comments', () => {
    const { server } = seeded();
    expect(commenterMaySend(server, (replica) => replica.getArray('comments').push([comment({ id: 'c9', authorId: 'erin', body: 'as erin' })]))).toBe(false);
    expect(commenterMaySend(server, (replica) => replica.getArray<Y.Map<unknown>>('comments').get(0).set('body', 'rewritten'))).toBe(false);
    expect(commenterMaySend(server, (replica) => replica.getArray('comments').delete(0, 1))).toBe(false);
    // A key set and deleted before sending still replaces (deletes) the existing value.
    expect(
      commenterMaySend(server, (replica) => {
        const first = replica.getArray<Y.Map<unknown>>('comments').get(0);
        first.set('body', 'x');
        first.delete('body');
      }),
    ).toBe(false);
    expect(commenterMaySend(server, (replica) => replica.getMap('quote').set('title', 'C'))).toBe(false);
    // Types nested in a comment are not the layout (a body is a string): refused, in new and existing comments.
    expect(
      commenterMaySend(server, (replica) => {
        const body = new Y.Text('nested');
        replica.getArray('comments').push([comment({ id: 'c8', authorId: 'carl', body })]);
        body.insert(0, 'edited ');
      }),
    ).toBe(false);
    const withText = replicaOf(server);
    withText.getArray('comments').push([comment({ id: 'c7', text: new Y.Text('x') })]);
    Y.applyUpdate(server, Y.encodeStateAsUpdate(withText));
    expect(commenterMaySend(server, (replica) => (replica.getArray<Y.Map<Y.Text>>('comments').get(1).get('text') as Y.Text).insert(0, 'y'))).toBe(false);
  });
});

/** A hand-made update (Yjs's V1 encoding): runs of structs per client, then an empty delete set. */
function rawUpdate(runs: Array<{ client: number; clock: number; structs: Array<(encoder: encoding.Encoder) => void> }>): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, runs.length);
  for (const { client, clock, structs } of runs) {
    encoding.writeVarUint(encoder, structs.length);
    encoding.writeVarUint(encoder, client);
    encoding.writeVarUint(encoder, clock);
    for (const write of structs) write(encoder);
  }
  encoding.writeVarUint(encoder, 0);
  return encoding.toUint8Array(encoder);
}

/** A new Y.Map in the root `comments` (content type 7, type ref 1). */
const newCommentMap = (encoder: encoding.Encoder) => {
  encoding.writeUint8(encoder, 7);
  encoding.writeVarUint(encoder, 1);
  encoding.writeVarString(encoder, 'comments');
  encoding.writeVarUint(encoder, 1);
};

/** `key` = values in the map held by item (client, clock) (content any, 8, with a parentSub). */
const mapEntry = (client: number, clock: number, key: string, values: unknown[]) => (encoder: encoding.Encoder) => {
  encoding.writeUint8(encoder, 8 | 0x20);
  encoding.writeVarUint(encoder, 0);
  encoding.writeVarUint(encoder, client);
  encoding.writeVarUint(encoder, clock);
  encoding.writeVarString(encoder, key);
  encoding.writeVarUint(encoder, values.length);
  for (const value of values) encoding.writeAny(encoder, value as string);
};

describe('hand-made updates a commenter could send', () => {
  const allowedFor = (server: Y.Doc, update: Uint8Array) => {
    const writes = describeWrites(server, update);
    return writes !== null && writes.every((write) => commenterMay(write, 'carl'));
  };

  it('an authorId entry carrying several values (a Y.Map reads the last) is refused; one value, their own, passes', () => {
    const { server } = seeded();
    expect(allowedFor(server, rawUpdate([{ client: 555, clock: 0, structs: [newCommentMap, mapEntry(555, 0, 'authorId', ['carl', 'erin'])] }]))).toBe(false);
    expect(allowedFor(server, rawUpdate([{ client: 555, clock: 0, structs: [newCommentMap, mapEntry(555, 0, 'authorId', ['carl'])] }]))).toBe(true);
    const applied = replicaOf(server);
    Y.applyUpdate(applied, rawUpdate([{ client: 555, clock: 0, structs: [newCommentMap, mapEntry(555, 0, 'authorId', ['carl'])] }]));
    expect(applied.getArray<Y.Map<unknown>>('comments').toArray().find((map) => map.has('authorId'))!.get('authorId')).toBe('carl');
  });

  it('a client sent twice (Yjs keeps only the last run) or with a gap is not placed at all', () => {
    const { server } = seeded();
    const decoy = { client: 555, clock: 0, structs: [newCommentMap] };
    expect(describeWrites(server, rawUpdate([decoy, { client: 555, clock: 0, structs: [newCommentMap] }]))).toBeNull();
    expect(describeWrites(server, rawUpdate([{ client: 555, clock: 1, structs: [newCommentMap] }]))).toBeNull();
  });

  it('new content under two clientIDs, or under one that is not theirs, is refused', () => {
    const { server } = seeded();
    const twoClients = describeWrites(server, rawUpdate([{ client: 555, clock: 0, structs: [newCommentMap] }, { client: 556, clock: 0, structs: [newCommentMap] }]))!;
    expect(twoClients.every((write) => commenterMay(write, 'carl'))).toBe(true);
    expect(commenterMayApply(twoClients, 'carl', () => true)).toBe(false);
    const oneClient = describeWrites(server, rawUpdate([{ client: 555, clock: 0, structs: [newCommentMap] }]))!;
    expect(commenterMayApply(oneClient, 'carl', (client) => client === 555)).toBe(true);
    expect(commenterMayApply(oneClient, 'carl', () => false)).toBe(false);
  });

  it('a comment added and deleted before the sync (garbage-collected in the replica), then another, is allowed', () => {
    const { server } = seeded();
    expect(
      commenterMaySend(server, (replica) => {
        const comments = replica.getArray<Y.Map<unknown>>('comments');
        comments.push([comment({ id: 'gone', authorId: 'carl', body: 'oops' })]);
        comments.delete(comments.length - 1, 1);
        comments.push([comment({ id: 'kept', authorId: 'carl', body: 'better' })]);
      }),
    ).toBe(true);
  });
});

describe('which clientIDs an update writes under (the owner check)', () => {
  it('only content new to the server counts: content it holds and deletions (which name the deleted item\'s client) do not', () => {
    const { editor, server } = seeded();
    const other = replicaOf(server);
    other.clientID = 2000;
    // Another user's structs the sender received earlier, sent back in its sync step 2, and a deletion of the editor's title.
    other.getMap('quote').delete('title');
    const deletionOnly = Y.encodeStateAsUpdate(other, Y.encodeStateVector(server));
    expect(structClients(deletionOnly)).toEqual([]);
    expect(new UpdateReach(deletionOnly).newContentClients(server)).toEqual([]);
    other.getText('notes').insert(0, 'x');
    const wholeState = Y.encodeStateAsUpdate(other);
    expect(structClients(wholeState).sort()).toEqual([editor.clientID, 2000]);
    expect(new UpdateReach(wholeState).newContentClients(server)).toEqual([2000]);
    // Content under the editor's clientID at clocks the server lacks is new: a stolen clientID.
    const thief = replicaOf(server);
    thief.clientID = editor.clientID;
    thief.getMap('quote').set('title', 'stolen');
    expect(new UpdateReach(Y.encodeStateAsUpdate(thief, Y.encodeStateVector(server))).newContentClients(server)).toEqual([editor.clientID]);
  });

  it('a commenter may claim an unowned clientID that wrote before only if all it wrote is comments', () => {
    const { editor, server } = seeded();
    expect(wroteOnlyUnder(server, editor.clientID, 'comments')).toBe(false);
    const commenter = replicaOf(server);
    commenter.clientID = 5000;
    commenter.getArray('comments').push([comment({ id: 'c5' })]);
    Y.applyUpdate(server, Y.encodeStateAsUpdate(commenter, Y.encodeStateVector(server)));
    expect(wroteOnlyUnder(server, 5000, 'comments')).toBe(true);
    expect(wroteOnlyUnder(server, 4242, 'comments')).toBe(true);
  });
});
