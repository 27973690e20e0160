import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { UpdateReach } from '../src/protocol.ts';
import { seeded } from './support/random-edits.ts';

/** The updates of three authors editing text and nested maps, each sometimes merging another's replica first. */
function session(random: () => number): Uint8Array[] {
  const authors = [new Y.Doc(), new Y.Doc(), new Y.Doc()];
  const updates: Uint8Array[] = [];
  for (const author of authors) author.on('update', (update: Uint8Array) => updates.push(update));
  const pick = () => authors[Math.floor(random() * authors.length)]!;
  for (let step = 0; step < 30; step++) {
    const author = pick();
    if (random() < 0.3) Y.applyUpdate(author, Y.encodeStateAsUpdate(pick()));
    const text = author.getText('notes');
    const map = author.getMap('quote');
    const roll = random();
    if (roll < 0.45 || text.length === 0) text.insert(Math.floor(random() * (text.length + 1)), 'ab');
    else if (roll < 0.65) text.delete(Math.floor(random() * text.length), 1);
    else if (roll < 0.8) map.set(`k${Math.floor(random() * 3)}`, new Y.Map());
    else {
      const nested = map.get('k0');
      if (nested instanceof Y.Map) nested.set('x', step);
      else map.set('v', step);
    }
  }
  return updates;
}

describe('UpdateReach', () => {
  it('predicts exactly which updates Yjs applies whole and which it parks, delivered in any order', () => {
    const random = seeded(12);
    let parked = 0;
    let checked = 0;
    for (let run = 0; run < 150; run++) {
      const server = new Y.Doc();
      const shuffled = session(random)
        .map((update) => ({ update, order: random() }))
        .sort((a, b) => a.order - b.order);
      for (const { update } of shuffled) {
        const reach = new UpdateReach(update);
        const pendingBefore = server.store.pendingStructs !== null || server.store.pendingDs !== null;
        const predicted = reach.appliesTo(server);
        Y.applyUpdate(server, update);
        const held = reach.heldBy(server);
        if (!held) parked++;
        // Never "applies" for an update Yjs parks.
        if (predicted) expect(held).toBe(true);
        // With nothing pending before (pending content can complete an update), "parks" is exact too.
        if (!pendingBefore) {
          expect(predicted).toBe(held);
          checked++;
        }
      }
    }
    // The sessions do exercise both outcomes.
    expect(parked).toBeGreaterThan(100);
    expect(checked).toBeGreaterThan(500);
  });

  it('refuses what is not a Yjs update with bad-update', () => {
    expect(() => new UpdateReach(new Uint8Array([1, 200, 3, 250, 255, 255, 255, 255, 7]))).toThrow(expect.objectContaining({ code: 'bad-update' }));
  });

  it('refuses with bad-update an item that refers to its own client at or after its own clock, which Yjs throws on while integrating', () => {
    const doc = new Y.Doc();
    doc.getText('t').insert(0, 'a');
    doc.getText('t').insert(0, 'b');
    const forged = (reference: 'origin' | 'rightOrigin') => {
      const copy = new Y.Doc();
      Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc));
      const [first] = copy.store.clients.get(doc.clientID)! as Y.Item[];
      first![reference] = new Y.ID(doc.clientID, 1);
      return Y.encodeStateAsUpdate(copy);
    };
    for (const reference of ['origin', 'rightOrigin'] as const) {
      const update = forged(reference);
      expect(() => Y.applyUpdate(new Y.Doc(), update)).toThrow();
      expect(() => new UpdateReach(update)).toThrow(expect.objectContaining({ code: 'bad-update' }));
    }
    expect(() => new UpdateReach(Y.encodeStateAsUpdate(doc))).not.toThrow();
  });
});
