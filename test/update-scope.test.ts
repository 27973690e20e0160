import * as encoding from 'lib0/encoding';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { rootsTouched } from '../src/documents/update-scope.ts';

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

describe('rootsTouched: which root types an update would change, without applying it', () => {
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

  it('cannot be fooled by a struct that overlaps what the server holds (Yjs re-anchors it after that client\'s last item)', () => {
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
    expect(rootsTouched(server, encoding.toUint8Array(overlapping))).toContain('notes');
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
