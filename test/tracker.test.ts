import * as prng from 'lib0/prng';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { kindOf } from '../src/documents/kinds.ts';
import { DocumentTracker, type DocumentChanges } from '../src/projection/tracker.ts';

/** A tracker fed every transaction of `doc`, with the changes it reported. */
function tracked(doc: Y.Doc) {
  const tracker = new DocumentTracker(kindOf('quote'), doc, 'q');
  const reported: DocumentChanges[] = [];
  doc.on('afterTransaction', (transaction: Y.Transaction) => reported.push(tracker.observe(transaction)));
  return { tracker, reported };
}

/** One random edit of the kinds editors make: add (mostly at the end), insert, delete, edit a field, type notes. */
function randomEdit(random: prng.PRNG, doc: Y.Doc, nextId: () => string): void {
  const lines = doc.getArray<Y.Map<unknown>>('lines');
  const choice = prng.uint32(random, 0, 9);
  if (choice <= 2 || lines.length === 0) {
    const at = choice === 0 ? prng.uint32(random, 0, lines.length) : lines.length;
    lines.insert(at, [new Y.Map<unknown>([['id', nextId()], ['quantity', prng.uint32(random, 0, 9)], ['unitPrice', prng.uint32(random, 0, 999) / 100]])]);
  } else if (choice === 3) {
    lines.delete(prng.uint32(random, 0, lines.length - 1), 1);
  } else if (choice <= 6) {
    lines.get(prng.uint32(random, 0, lines.length - 1)).set('quantity', prng.uint32(random, 0, 20));
  } else if (choice === 6 && prng.bool(random)) {
    lines.get(prng.uint32(random, 0, lines.length - 1)).set('id', nextId());
  } else if (choice === 7) {
    doc.getMap('quote').set('discountPct', prng.uint32(random, 0, 100));
  } else {
    // Typing at the end mostly, as people do; sometimes in the middle, or deleting.
    const notes = doc.getText('notes');
    const where = prng.uint32(random, 0, 3);
    if (where === 0 && notes.length > 0) notes.delete(prng.uint32(random, 0, notes.length - 1), 1);
    else notes.insert(where === 1 ? prng.uint32(random, 0, notes.length) : notes.length, prng.word(random, 1, 3));
  }
}

describe('DocumentTracker', () => {
  it.each([1, 2, 3, 4, 5])('kept state equals a fresh read after every transaction, also across merged replicas (seed %i)', (seed) => {
    const random = prng.create(seed);
    const a = new Y.Doc();
    const b = new Y.Doc();
    let counter = 0;
    const nextId = () => `l${counter++}`;
    const trackedA = tracked(a);
    for (let round = 0; round < 60; round++) {
      // Both replicas edit on their own, in transactions of several edits, then exchange.
      for (const doc of [a, b]) {
        doc.transact(() => {
          for (let edit = prng.uint32(random, 1, 4); edit > 0; edit--) randomEdit(random, doc, nextId);
        });
      }
      Y.applyUpdate(a, Y.encodeStateAsUpdate(b, Y.encodeStateVector(a)));
      Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)));

      const fresh = new DocumentTracker(kindOf('quote'), a, 'q');
      expect(trackedA.tracker.rows()).toEqual(fresh.rows());
      expect(trackedA.tracker.members('lines')).toEqual(fresh.members('lines'));
      expect(trackedA.tracker.texts).toEqual(fresh.texts);
    }
    expect(trackedA.reported.length).toBeGreaterThan(60);
  });

  it("reports each transaction's notes as they were before and after it: typed at the end, in the middle, deleted, formatted, inside an embed", () => {
    const doc = new Y.Doc();
    const notes = doc.getText('notes');
    const { reported } = tracked(doc);
    let before = '';
    doc.on('beforeTransaction', () => (before = notes.toString()));
    const embedded = new Y.Text('inside');
    const edits: Array<() => void> = [
      () => notes.insert(0, 'Delivery'),
      () => notes.insert(notes.length, ' in May'),
      () => doc.transact(() => {
        notes.insert(notes.length, ',');
        notes.insert(notes.length, ' ex works');
      }),
      () => notes.insert(8, ' by sea'),
      () => notes.delete(notes.length - 3, 3),
      // Typed at the end and deleted in one transaction: nothing of it is left.
      () => doc.transact(() => {
        notes.insert(notes.length, 'xyz');
        notes.delete(notes.length - 3, 3);
      }),
      () => doc.transact(() => {
        notes.delete(0, 1);
        notes.insert(notes.length, '.');
      }),
      () => notes.format(0, 4, { bold: true }),
      () => notes.insert(notes.length, ' Bold', { bold: true }),
      () => notes.insertEmbed(notes.length, embedded),
      // Text typed inside the embed is not the notes' own.
      () => embedded.insert(embedded.length, ' more'),
      () => notes.insert(notes.length, '!'),
    ];
    const expected: Array<{ oldValue: string; newValue: string } | null> = [];
    for (const edit of edits) {
      edit();
      const after = notes.toString();
      expected.push(after === before ? null : { oldValue: before, newValue: after });
    }
    const reportedNotes = reported.map(({ fieldChanges }) => {
      const change = fieldChanges.find(({ field }) => field === 'notes');
      return change ? { oldValue: change.oldValue, newValue: change.newValue } : null;
    });
    expect(reportedNotes).toEqual(expected);
    expect(expected.filter((change) => change === null).length).toBeGreaterThan(0);
  });

  it('a kept text that missed a change is read whole again at the next keystroke', () => {
    const doc = new Y.Doc();
    const notes = doc.getText('notes');
    notes.insert(0, 'Hello');
    const { tracker, reported } = tracked(doc);
    tracker.texts = { ...tracker.texts, notes: 'Hell' }; // as after a transaction that could not be read
    notes.insert(notes.length, '!');
    expect(reported.at(-1)!.fieldChanges).toEqual([expect.objectContaining({ field: 'notes', oldValue: 'Hell', newValue: 'Hello!' })]);
    expect(tracker.texts.notes).toBe('Hello!');
  });

  it('a header row read after later transactions shows the document as its own transaction left it', () => {
    const doc = new Y.Doc();
    const { reported } = tracked(doc);
    const lines = doc.getArray<Y.Map<unknown>>('lines');
    lines.push([new Y.Map<unknown>([['id', 'l0'], ['quantity', 2], ['unitPrice', 3]])]);
    doc.getMap('quote').set('title', 'First');
    doc.getText('notes').insert(0, 'a');
    const early = reported.at(-1)!;

    lines.get(0).set('quantity', 5);
    lines.push([new Y.Map<unknown>([['id', 'l1'], ['quantity', 1], ['unitPrice', 1]])]);
    doc.getMap('quote').set('title', 'Second');
    doc.getText('notes').insert(1, 'b');

    expect(early.rows.header).toMatchObject({ title: 'First', notes: 'a', line_count: 1, subtotal: '6.00' });
    expect(reported.at(-1)!.rows.header).toMatchObject({ title: 'Second', notes: 'ab', line_count: 2, subtotal: '16.00' });
  });

  it('reports a deleted line with its last fields, and only the rows that changed', () => {
    const doc = new Y.Doc();
    const lines = doc.getArray<Y.Map<unknown>>('lines');
    doc.transact(() => {
      for (let index = 0; index < 5; index++) lines.push([new Y.Map<unknown>([['id', `l${index}`], ['quantity', index], ['unitPrice', 2]])]);
    });
    const { reported } = tracked(doc);

    lines.get(4).set('quantity', 40);
    expect([...reported.at(-1)!.rows.members.keys()]).toEqual(['l4']);
    expect(reported.at(-1)!.fieldChanges).toEqual([{ entity: 'quote_line', entityId: 'l4', field: 'quantity', action: 'update', oldValue: 4, newValue: 40, text: false }]);

    lines.push([new Y.Map<unknown>([['id', 'l5'], ['quantity', 1], ['unitPrice', 1]])]);
    expect([...reported.at(-1)!.rows.members]).toEqual([['l5', expect.objectContaining({ position: 5, line_total: '1.00' })]]);

    lines.delete(1, 1);
    const { fieldChanges, rows } = reported.at(-1)!;
    expect(fieldChanges).toEqual([{ entity: 'quote_line', entityId: 'l1', field: '*', action: 'delete', oldValue: { id: 'l1', sku: null, description: null, quantity: 1, unitPrice: 2, discountPct: 0 }, newValue: null, text: false }]);
    // l1 is gone; the lines after it moved up one position.
    expect([...rows.members].map(([id, row]) => [id, row?.position ?? null])).toEqual([
      ['l1', null],
      ['l2', 1],
      ['l3', 2],
      ['l4', 3],
      ['l5', 4],
    ]);
    // l0 0 + l2 2x2 + l3 3x2 + l4 40x2 + l5 1x1 = 91
    expect(rows.header).toMatchObject({ line_count: 5, subtotal: '91.00' });

    // A line whose id changes is one line gone and one new, and the totals do not move.
    lines.get(0).set('id', 'renamed');
    expect(reported.at(-1)!.fieldChanges.map(({ entityId, action }) => [entityId, action])).toEqual([
      ['l0', 'delete'],
      ['renamed', 'create'],
    ]);
    expect([...reported.at(-1)!.rows.members.keys()]).toEqual(['l0', 'renamed']);
    expect(reported.at(-1)!.rows.header).toMatchObject({ line_count: 5, subtotal: '91.00' });

    // Two lines sharing an id: removing one leaves the row to the other.
    lines.push([new Y.Map<unknown>([['id', 'l2'], ['quantity', 7], ['unitPrice', 1]])]);
    lines.delete(1, 1); // the first l2
    expect(reported.at(-1)!.rows.members.get('l2')).toMatchObject({ quantity: 7, position: 4 });
  });
});
