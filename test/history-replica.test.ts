import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { kindOf, parseDocumentName } from '../src/documents/kinds.ts';
import { fragmentToProseMirror } from '../src/documents/rich-text.ts';
import { renderDocument } from '../src/documents/service.ts';
import { HistoryReplica } from '../src/history/replica.ts';
import { apply, op, type Op } from './support/random-edits.ts';

/**
 * The fast way to read versions, in process: three clients edit (online and
 * offline), their updates reach a server replica in any order (some wait
 * for missing dependencies), and the server logs what it applies, as
 * Concord does. Every version the history replica copies out must read
 * exactly like the log replayed up to it, whether the replica starts from the
 * empty document or from a checkpoint.
 */

type Step = { client: number; edit: Op } | { client: number; deliver: number } | { client: number; sync: true };

function steps(kind: 'quote' | 'report') {
  const client = fc.integer({ min: 0, max: 2 });
  return fc.array(
    fc.oneof(
      { weight: 5, arbitrary: fc.record({ client, edit: op(kind) }) },
      { weight: 3, arbitrary: fc.record({ client, deliver: fc.nat() }) },
      { weight: 2, arbitrary: fc.record({ client, sync: fc.constant(true as const) }) },
    ),
    { minLength: 20, maxLength: 100, size: 'max' },
  );
}

/** The log a server writes for such a session: every update it applied, in order. */
function session(kind: 'quote' | 'report', plan: Step[]): Uint8Array[] {
  const server = new Y.Doc();
  const log: Uint8Array[] = [];
  server.on('update', (update: Uint8Array, origin: unknown) => origin !== 'to-client' && log.push(update));
  const clients = [0, 1, 2].map(() => ({ doc: new Y.Doc(), queued: [] as Uint8Array[] }));
  for (const client of clients) client.doc.on('update', (update: Uint8Array, origin: unknown) => origin !== 'from-server' && client.queued.push(update));
  for (const step of plan) {
    const client = clients[step.client]!;
    if ('edit' in step) apply(client.doc, kind, step.edit);
    else if ('deliver' in step) {
      // One queued update, not necessarily the oldest: it may wait on the server for what it depends on.
      if (client.queued.length === 0) continue;
      const [update] = client.queued.splice(step.deliver % client.queued.length, 1);
      Y.applyUpdate(server, update!);
    } else {
      Y.applyUpdate(server, Y.encodeStateAsUpdate(client.doc, Y.encodeStateVector(server)));
      Y.applyUpdate(client.doc, Y.encodeStateAsUpdate(server, Y.encodeStateVector(client.doc)), 'from-server');
      client.queued = [];
    }
  }
  return log;
}

/**
 * What a version reads like: its JSON form, and the layout's roots raw (values
 * outside the layout included), rich text as ProseMirror JSON (whose text
 * nodes do not depend on where Yjs happens to keep redundant format marks).
 */
function reading(kind: 'quote' | 'report', doc: Y.Doc) {
  const layout = kindOf(kind).layout;
  const raw = (value: unknown): unknown => {
    if (value instanceof Y.XmlFragment) return fragmentToProseMirror(value);
    if (value instanceof Y.Map) return Object.fromEntries([...value.entries()].map(([key, inner]) => [key, raw(inner)]));
    if (value instanceof Y.AbstractType) return value.toJSON();
    return value;
  };
  return {
    json: renderDocument(parseDocumentName(`acme/${kind}/r1`), doc),
    header: doc.getMap(layout.header.key).toJSON(),
    texts: layout.texts.map((key) => doc.getText(key).toDelta()),
    collections: Object.keys(layout.collections).map((key) => doc.getArray(key).toArray().map(raw)),
  };
}

describe('history replica', () => {
  for (const kind of ['quote', 'report'] as const) {
    it(`${kind}: every version copied out reads exactly like the log replayed to it, from the start or from a checkpoint`, () => {
      const layout = kindOf(kind).layout;
      fc.assert(
        fc.property(steps(kind), fc.nat(), (plan, baseChoice) => {
          const log = session(kind, plan);
          const replayed = new Y.Doc();
          const expected = [reading(kind, replayed)];
          const states = [Y.encodeStateAsUpdate(replayed)];
          for (const update of log) {
            Y.applyUpdate(replayed, update);
            expected.push(reading(kind, replayed));
            states.push(Y.encodeStateAsUpdate(replayed));
          }
          const base = baseChoice % (log.length + 1);
          for (const start of [null, { seq: base, state: states[base]! }]) {
            const replica = new HistoryReplica(start);
            log.forEach((update, index) => index + 1 > replica.seq && replica.apply(index + 1, update));
            for (let seq = replica.base; seq <= log.length; seq++) {
              expect(reading(kind, replica.versionDoc(layout, seq)), `version ${seq} of ${log.length}, from ${replica.base}`).toEqual(expected[seq]);
            }
          }
        }),
        { numRuns: 200 },
      );
    });
  }

  it('refuses versions it does not hold and updates out of order', () => {
    const replica = new HistoryReplica(null);
    const doc = new Y.Doc();
    doc.getMap('quote').set('title', 'x');
    replica.apply(1, Y.encodeStateAsUpdate(doc));
    expect(() => replica.apply(3, Y.encodeStateAsUpdate(doc))).toThrow(/at 1 and cannot apply update 3/);
    expect(() => replica.versionDoc(kindOf('quote').layout, 2)).toThrow(/versions 0 to 1, not 2/);
  });
});

describe('rich text as ProseMirror JSON', () => {
  it('joins adjacent runs with the same marks into one text node, wherever Yjs keeps its format marks', () => {
    const alice = new Y.Doc();
    const paragraph = new Y.XmlElement('paragraph');
    alice.getXmlFragment('body').insert(0, [paragraph]);
    const text = new Y.XmlText();
    paragraph.insert(0, [text]);
    text.insert(0, 'Heading');
    const bob = new Y.Doc();
    Y.applyUpdate(bob, Y.encodeStateAsUpdate(alice));
    // Two people make the start italic at once: Yjs keeps both sets of marks, and splits its delta at each.
    text.format(0, 1, { italic: true });
    ((bob.getXmlFragment('body').get(0) as Y.XmlElement).get(0) as Y.XmlText).format(0, 2, { italic: true });
    Y.applyUpdate(alice, Y.encodeStateAsUpdate(bob));
    expect(text.toDelta()).toHaveLength(3);
    expect(fragmentToProseMirror(alice.getXmlFragment('body'))).toEqual({
      type: 'doc',
      content: [{ type: 'paragraph', content: [{ type: 'text', text: 'H', marks: [{ type: 'italic' }] }, { type: 'text', text: 'eading' }] }],
    });
  });
});
