import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { kindOf } from '../src/documents/kinds.ts';
import { parseDocumentName } from '../src/documents/name.ts';
import { renderDocument } from '../src/documents/service.ts';
import { convergeTo } from '../src/history/converge.ts';

/**
 * Restore's core, in process: whatever happened to a document after a version
 * (edits, moves, concurrent replicas, values outside the layout), converging
 * the live document to that version in one transaction makes it read exactly
 * like the version, and a replica that receives the one update agrees.
 */

type Op =
  | { op: 'header'; field: string; value: unknown }
  | { op: 'unsetHeader'; field: string }
  | { op: 'addMember'; at: number; id: string; fields: Record<string, unknown> }
  | { op: 'removeMember'; at: number }
  | { op: 'moveMember'; from: number; to: number }
  | { op: 'memberField'; at: number; field: string; value: unknown }
  | { op: 'type'; at: number; text: string }
  | { op: 'erase'; at: number; length: number }
  | { op: 'body'; at: number; paragraphs: string[]; heading: number | null }
  | { op: 'stray'; value: number };

const word = fc.constantFrom('', 'Pumps', 'Valves', 'ACME', 'x', '😀 emoji', '😃 emoji', '😀', '😃', 'naïve', 'EUR');
const number = fc.oneof(fc.constantFrom(0, 1, 2.5, 0.335, 100), fc.integer({ min: 0, max: 1000 }));
const anyValue = fc.oneof(word, number, fc.constant(null), fc.constant('not a number'), fc.boolean());

function ops(kind: 'quote' | 'report') {
  const headerFields = kind === 'quote' ? ['title', 'number', 'status', 'currency', 'discountPct', 'taxPct', 'validUntil'] : ['title', 'projectId', 'period', 'status'];
  const memberFields = kind === 'quote' ? ['sku', 'description', 'quantity', 'unitPrice', 'discountPct'] : ['title'];
  const index = fc.nat({ max: 12 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ op: fc.constant('header' as const), field: fc.constantFrom(...headerFields), value: anyValue }),
    fc.record({ op: fc.constant('unsetHeader' as const), field: fc.constantFrom(...headerFields) }),
    fc.record({
      op: fc.constant('addMember' as const),
      at: index,
      id: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'),
      fields: fc.dictionary(fc.constantFrom(...memberFields), anyValue, { maxKeys: 3 }),
    }),
    fc.record({ op: fc.constant('removeMember' as const), at: index }),
    fc.record({ op: fc.constant('moveMember' as const), from: index, to: index }),
    fc.record({ op: fc.constant('memberField' as const), at: index, field: fc.constantFrom(...memberFields, 'id'), value: anyValue }),
    fc.record({ op: fc.constant('type' as const), at: fc.nat({ max: 40 }), text: word }),
    fc.record({ op: fc.constant('erase' as const), at: fc.nat({ max: 40 }), length: fc.nat({ max: 6 }) }),
    fc.record({ op: fc.constant('body' as const), at: index, paragraphs: fc.array(word, { maxLength: 3 }), heading: fc.option(fc.integer({ min: 1, max: 3 })) }),
    fc.record({ op: fc.constant('stray' as const), value: fc.integer() }),
  );
  return fc.array(op, { maxLength: 25 });
}

/** Applies one op the way a client would, in its own transaction. */
function apply(doc: Y.Doc, kind: 'quote' | 'report', step: Op): void {
  const collection = kind === 'quote' ? 'lines' : 'sections';
  const members = doc.getArray<unknown>(collection);
  const member = (at: number) => (members.length > 0 ? members.get(at % members.length) : undefined);
  doc.transact(() => {
    switch (step.op) {
      case 'header':
        return doc.getMap(kind).set(step.field, step.value);
      case 'unsetHeader':
        return doc.getMap(kind).delete(step.field);
      case 'addMember': {
        const map = new Y.Map<unknown>();
        members.insert(step.at % (members.length + 1), [map]);
        map.set('id', step.id);
        for (const [field, value] of Object.entries(step.fields)) map.set(field, value);
        if (kind === 'report') map.set('body', new Y.XmlFragment());
        return;
      }
      case 'removeMember':
        if (members.length > 0) members.delete(step.at % members.length, 1);
        return;
      case 'moveMember': {
        const moved = member(step.from);
        if (!(moved instanceof Y.Map)) return;
        const copy = moved.clone();
        members.delete(step.from % members.length, 1);
        members.insert(step.to % (members.length + 1), [copy]);
        return;
      }
      case 'memberField': {
        const map = member(step.at);
        if (map instanceof Y.Map) map.set(step.field, step.value);
        return;
      }
      case 'type': {
        const text = kind === 'quote' ? doc.getText('notes') : bodyText(member(step.at));
        if (text) text.insert(Math.min(step.at, text.length), step.text);
        return;
      }
      case 'erase': {
        const text = kind === 'quote' ? doc.getText('notes') : bodyText(member(step.at));
        if (text) text.delete(Math.min(step.at, text.length), Math.min(step.length, Math.max(0, text.length - step.at)));
        return;
      }
      case 'body': {
        const map = member(step.at);
        const body = map instanceof Y.Map ? map.get('body') : undefined;
        if (!(body instanceof Y.XmlFragment)) return;
        const blocks = step.paragraphs.map((text) => {
          const paragraph = new Y.XmlElement('paragraph');
          if (text) paragraph.insert(0, [new Y.XmlText(text)]);
          return paragraph;
        });
        if (step.heading !== null) {
          const heading = new Y.XmlElement('heading');
          heading.setAttribute('level', step.heading as unknown as string);
          heading.insert(0, [new Y.XmlText('Heading')]);
          blocks.unshift(heading);
        }
        body.insert(body.length, blocks);
        return;
      }
      case 'stray':
        return members.push([step.value]);
    }
  });
}

/** The first text of a section body's last block, if there is one. */
function bodyText(member: unknown): Y.XmlText | undefined {
  const body = member instanceof Y.Map ? member.get('body') : undefined;
  const block = body instanceof Y.XmlFragment && body.length > 0 ? body.get(body.length - 1) : undefined;
  const text = block instanceof Y.XmlElement ? block.get(0) : undefined;
  return text instanceof Y.XmlText ? text : undefined;
}

function copyOf(doc: Y.Doc): Y.Doc {
  const copy = new Y.Doc();
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc));
  return copy;
}

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
