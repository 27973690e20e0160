import * as encoding from 'lib0/encoding';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { commenterMay } from '../src/auth/access.ts';
import { describeWrites } from '../src/documents/update-scope.ts';

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
  return writes !== null && commenterMay(writes, 'carl');
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
