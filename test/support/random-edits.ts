import fc from 'fast-check';
import * as Y from 'yjs';

/**
 * Random edits of documents for property tests: header fields (valid or
 * not), members added, removed, moved (a copy re-inserted, as clients move
 * things in Yjs) and changed, text typed and erased (notes, section bodies),
 * formatting, paragraphs and headings with attributes, stray values.
 */

export type Op =
  | { op: 'header'; field: string; value: unknown }
  | { op: 'unsetHeader'; field: string }
  | { op: 'addMember'; at: number; id: string; fields: Record<string, unknown> }
  | { op: 'removeMember'; at: number }
  | { op: 'moveMember'; from: number; to: number }
  | { op: 'memberField'; at: number; field: string; value: unknown }
  | { op: 'type'; at: number; text: string }
  | { op: 'erase'; at: number; length: number }
  | { op: 'body'; at: number; paragraphs: string[]; heading: number | null }
  | { op: 'format'; at: number; from: number; length: number; mark: string | null }
  | { op: 'stray'; value: number };

const word = fc.constantFrom('', 'Pumps', 'Valves', 'ACME', 'x', '😀 emoji', '😃 emoji', '😀', '😃', 'naïve', 'EUR');
const number = fc.oneof(fc.constantFrom(0, 1, 2.5, 0.335, 100), fc.integer({ min: 0, max: 1000 }));
const anyValue = fc.oneof(word, number, fc.constant(null), fc.constant('not a number'), fc.boolean());

/** A random edit of a quote or a report as a client makes it, values outside the layout included. */
export function op(kind: 'quote' | 'report'): fc.Arbitrary<Op> {
  const headerFields = kind === 'quote' ? ['title', 'number', 'status', 'currency', 'discountPct', 'taxPct', 'validUntil'] : ['title', 'projectId', 'period', 'status'];
  const memberFields = kind === 'quote' ? ['sku', 'description', 'quantity', 'unitPrice', 'discountPct'] : ['title'];
  const index = fc.nat({ max: 12 });
  return fc.oneof(
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
    fc.record({ op: fc.constant('format' as const), at: index, from: fc.nat({ max: 20 }), length: fc.nat({ max: 8 }), mark: fc.constantFrom('bold', 'italic', null) }),
    fc.record({ op: fc.constant('stray' as const), value: fc.integer() }),
  );
}

/** Up to 25 random edits. */
export function ops(kind: 'quote' | 'report'): fc.Arbitrary<Op[]> {
  return fc.array(op(kind), { maxLength: 25 });
}

/** Applies one op the way a client would, in its own transaction. */
export function apply(doc: Y.Doc, kind: 'quote' | 'report', step: Op): void {
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
        if (text) text.insert(boundary(characters(text), step.at), step.text);
        return;
      }
      case 'erase': {
        const text = kind === 'quote' ? doc.getText('notes') : bodyText(member(step.at));
        if (!text) return;
        const from = boundary(characters(text), step.at);
        text.delete(from, boundary(characters(text), from + step.length) - from);
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
      case 'format': {
        const text = kind === 'quote' ? null : bodyText(member(step.at));
        if (!text) return;
        // Bold on, or every mark off: format marks among the characters, as an editor leaves them.
        const marks = step.mark === null ? { bold: null, italic: null } : { [step.mark]: true };
        const from = boundary(characters(text), step.from);
        text.format(from, boundary(characters(text), from + step.length) - from, marks);
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

/** A small seeded generator (mulberry32): the same sequence on every run, so a failure can be replayed. */
export function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * The nearest position at or before `index` that does not split a surrogate
 * pair, as an editor's caret never does (Yjs turns a split pair into U+FFFD,
 * differently on each replica).
 */
export function boundary(text: string, index: number): number {
  const at = Math.min(index, text.length);
  const code = text.charCodeAt(at);
  return at > 0 && at < text.length && code >= 0xdc00 && code <= 0xdfff ? at - 1 : at;
}

/** A text's characters as positions count them: a `Y.XmlText`'s `toString()` adds its marks as tags. */
function characters(text: Y.Text): string {
  return text
    .toDelta()
    .map(({ insert }: { insert: unknown }) => (typeof insert === 'string' ? insert : ' '))
    .join('');
}

/** A replica of `doc` as it is now. */
export function copyOf(doc: Y.Doc): Y.Doc {
  const copy = new Y.Doc();
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc));
  return copy;
}

