import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { kindOf, parseDocumentName } from '../src/documents/kinds.ts';
import { renderDocument } from '../src/documents/service.ts';
import { convergeTo } from '../src/history/converge.ts';
import { apply, copyOf, ops } from './support/random-edits.ts';

/**
 * Restore's core, in process: whatever happened to a document after a version
 * (edits, moves, concurrent replicas, values outside the layout), converging
 * the live document to that version in one transaction makes it read exactly
 * like the version, and a replica that receives the one update agrees.
 */

describe('converging a live document to a past version', () => {
  for (const kind of ['quote', 'report'] as const) {
    it(`${kind}: one transaction makes it read exactly like the version, on every replica`, () => {
      const document = parseDocumentName(`acme/${kind}/p1`);
      const layout = kindOf(kind).layout;
      fc.assert(
        fc.property(ops(kind), ops(kind), ops(kind), (before, after, concurrent) => {
          const live = new Y.Doc();
          for (const step of before) apply(live, kind, step);
          const version = copyOf(live);
          // Later: edits on the live document and, merged in, a concurrent replica's.
          const other = copyOf(live);
          for (const step of after) apply(live, kind, step);
          for (const step of concurrent) apply(other, kind, step);
          Y.applyUpdate(live, Y.encodeStateAsUpdate(other));
          const replica = copyOf(live);

          const updates: Uint8Array[] = [];
          live.on('update', (update: Uint8Array) => updates.push(update));
          live.transact(() => convergeTo(layout, live, version));

          const expected = renderDocument(document, version);
          expect(renderDocument(document, live)).toEqual(expected);
          expect(updates.length).toBeLessThanOrEqual(1);
          for (const update of updates) Y.applyUpdate(replica, update);
          expect(renderDocument(document, replica)).toEqual(expected);
          // Beyond the JSON form: the header's raw values and the members' raw entries match too.
          expect(live.getMap(layout.header.key).toJSON()).toEqual(version.getMap(layout.header.key).toJSON());
          const collection = kind === 'quote' ? 'lines' : 'sections';
          expect(live.getArray(collection).toJSON()).toEqual(version.getArray(collection).toJSON());
        }),
        { numRuns: 300 },
      );
    });
  }

  it('writes nothing when the document already reads like the version', () => {
    const live = new Y.Doc();
    apply(live, 'quote', { op: 'addMember', at: 0, id: 'a', fields: { quantity: 1 } });
    apply(live, 'quote', { op: 'type', at: 0, text: 'Notes 😀' });
    const updates: Uint8Array[] = [];
    live.on('update', (update: Uint8Array) => updates.push(update));
    live.transact(() => convergeTo(kindOf('quote').layout, live, copyOf(live)));
    expect(updates).toEqual([]);
  });

  it('changes text between the common prefix and suffix, never inside a surrogate pair', () => {
    for (const [was, is] of [['Call 😀 first', 'Call 😃 first'], ['😀', '😃x'], ['a😀', 'a😃'], ['😀b', '😃b']]) {
      const version = new Y.Doc();
      version.getText('notes').insert(0, was!);
      const live = copyOf(version);
      const notes = live.getText('notes');
      notes.delete(0, notes.length);
      notes.insert(0, is!);
      const deltas: unknown[] = [];
      notes.observe((event) => deltas.push(event.delta));
      live.transact(() => convergeTo(kindOf('quote').layout, live, version));
      expect(notes.toString()).toBe(was);
      // Only the differing character is rewritten, whole.
      const prefix = was!.startsWith('a') ? 1 : was!.startsWith('Call') ? 5 : 0;
      expect(deltas).toEqual([[...(prefix ? [{ retain: prefix }] : []), { delete: is!.length - was!.length + 2 }, { insert: '😀' }]]);
    }
  });

  it('keeps members that stayed in order and edits them in place (a bound editor keeps its fragment)', () => {
    const live = new Y.Doc();
    ['a', 'b', 'c', 'd'].forEach((id, at) => apply(live, 'report', { op: 'addMember', at, id, fields: { title: id } }));
    apply(live, 'report', { op: 'body', at: 2, paragraphs: ['Old text'], heading: null });
    const version = copyOf(live);
    const sections = live.getArray<Y.Map<unknown>>('sections');
    const [, b, c] = sections.toArray();
    const cBody = c!.get('body');
    apply(live, 'report', { op: 'moveMember', from: 0, to: 3 }); // a moves last: b c d a
    apply(live, 'report', { op: 'type', at: 1, text: ' and more' }); // c's body
    live.transact(() => convergeTo(kindOf('report').layout, live, version));
    expect(sections.toArray().map((section) => section.get('id'))).toEqual(['a', 'b', 'c', 'd']);
    expect(sections.get(1)).toBe(b);
    expect(sections.get(2)).toBe(c);
    expect(c!.get('body')).toBe(cBody);
    expect(renderDocument(parseDocumentName('acme/report/p1'), live)).toEqual(renderDocument(parseDocumentName('acme/report/p1'), version));
  });
});
