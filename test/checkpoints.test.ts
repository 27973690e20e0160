import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { createLogger } from '../src/log.ts';
import { createMetrics } from '../src/metrics.ts';
import { Checkpointer } from '../src/persistence/checkpoints.ts';
import { replay } from '../src/persistence/replay.ts';
import { MemoryStorage } from '../src/storage/memory.ts';

const EVERY = 5;
const document = parseDocumentName('acme/quote/imported');
let checkpointer: Checkpointer | undefined;

afterEach(async () => {
  await checkpointer?.close();
});

/** A log of `count` updates, each setting the quote's discount again, written without checkpoints (like an import). */
async function importedLog(count: number) {
  const storage = new MemoryStorage();
  const source = new Y.Doc();
  const updates: Uint8Array[] = [];
  source.on('update', (update: Uint8Array) => updates.push(update));
  for (let value = 1; value <= count; value++) source.getMap('quote').set('discountPct', value);
  await storage.append('acme', updates.map((update) => ({ document, update, userId: 'importer', origin: 'client' as const, receivedAt: new Date() })));
  const metrics = createMetrics();
  checkpointer = new Checkpointer({ storage, every: EVERY, keepBytes: 0, log: createLogger('silent', 2), metrics });
  const written = async () => (await metrics.checkpointsWritten.get()).values[0]?.value ?? 0;
  return { storage, checkpointer, written };
}

describe('checkpoints for version reads', () => {
  it('a read where the log has none writes one at every multiple up to it, once however many reads ask at a time, each with a compact state that reads as the exact one', async () => {
    const { storage, checkpointer, written } = await importedLog(23);
    await Promise.all([checkpointer.checkpointNear(document, 23), checkpointer.checkpointNear(document, 17), checkpointer.checkpointNear(document, 22)]);

    expect(await written()).toBe(4);
    for (const seq of [5, 10, 15, 20]) {
      expect(await storage.latestCheckpointSeq(document, seq)).toBe(seq);
      const { checkpoint } = (await storage.loadCompact(document, seq))!;
      const compact = new Y.Doc();
      Y.applyUpdate(compact, checkpoint!.compact);
      const exact = replay(null, await storage.readUpdates(document, 0, seq));
      expect(compact.getMap('quote').toJSON()).toEqual({ discountPct: seq });
      expect(compact.getMap('quote').toJSON()).toEqual(exact.getMap('quote').toJSON());
      // The values it replaced are left out.
      expect(checkpoint!.compact.length).toBeLessThan(Y.encodeStateAsUpdate(exact).length);
    }
    // Near enough to one already: nothing more.
    await checkpointer.checkpointNear(document, 24);
    expect(await written()).toBe(4);
  });

  it('writes nothing more once closing', async () => {
    const { checkpointer, written } = await importedLog(12);
    await checkpointer.close();
    await expect(checkpointer.checkpointNear(document, 12)).rejects.toThrow();
    expect(await written()).toBe(0);
  });
});

/** MemoryStorage counting its full loads (newest checkpoint and the updates after it). */
class CountingStorage extends MemoryStorage {
  loads = 0;
  /** While set, reading updates waits for it. */
  gate: Promise<void> | undefined;

  override async load(...args: Parameters<MemoryStorage['load']>) {
    this.loads += 1;
    return super.load(...args);
  }

  override async readUpdates(...args: Parameters<MemoryStorage['readUpdates']>) {
    await this.gate;
    return super.readUpdates(...args);
  }
}

/**
 * Live documents: each `edit` logs updates of one (overwritten values,
 * typing, deletions; `opening` text first) and reports them as the update log
 * does, then waits for the checkpoint.
 */
function liveDocuments(keepBytes: number) {
  const storage = new CountingStorage();
  const metrics = createMetrics();
  checkpointer = new Checkpointer({ storage, every: EVERY, keepBytes, log: createLogger('silent', 2), metrics });
  const live = checkpointer;
  /** Per document, its source, its seq and its content after each seq. */
  const sources = new Map<string, { doc: Y.Doc; seq: number; contents: Map<number, { quote: unknown; notes: string }> }>();
  const edit = async (count: number, { of = document, opening = '', wait = true } = {}) => {
    const source = sources.get(of.name) ?? { doc: new Y.Doc(), seq: 0, contents: new Map() };
    sources.set(of.name, source);
    const { doc } = source;
    const updates: Uint8Array[] = [];
    const collect = (update: Uint8Array) => updates.push(update);
    doc.on('update', collect);
    for (let i = 1; i <= count; i++) {
      const seq = source.seq + i;
      doc.transact(() => {
        doc.getMap('quote').set('discountPct', seq);
        const notes = doc.getText('notes');
        notes.insert(notes.length, `${i === 1 ? opening : ''}word ${seq} `);
        if (seq % 3 === 0) notes.delete(0, 2);
      });
      source.contents.set(seq, { quote: doc.getMap('quote').toJSON(), notes: doc.getText('notes').toString() });
    }
    doc.off('update', collect);
    await storage.append('acme', updates.map((update) => ({ document: of, update, userId: 'editor', origin: 'client' as const, receivedAt: new Date() })));
    source.seq += count;
    live.advance(of, source.seq);
    if (wait) await expect.poll(() => live.writesUnderWay).toBe(0);
  };
  /** Each checkpoint's state and compact state hold the log's content at its seq. */
  const expectExact = async (seqs: number[], of = document) => {
    for (const at of seqs) {
      // Read without a load, which the tests count.
      const checkpoint = await storage.latestCheckpoint(of, at);
      expect(checkpoint?.seq).toBe(at);
      for (const state of [checkpoint!.state, (await storage.loadCompact(of, at))!.checkpoint!.compact]) {
        const built = new Y.Doc();
        Y.applyUpdate(built, state);
        expect({ quote: built.getMap('quote').toJSON(), notes: built.getText('notes').toString() }).toEqual(sources.get(of.name)!.contents.get(at));
      }
    }
  };
  const failedWrites = async () => (await metrics.persistenceErrors.get()).values.find((value) => value.labels.operation === 'write-checkpoint')?.value ?? 0;
  return { storage, edit, expectExact, live, failedWrites };
}

describe('checkpoints of live documents', () => {
  it.each([
    { keepBytes: 1024 * 1024, loads: 1, what: 'builds each next one from the document the worker kept, reading only the updates since' },
    { keepBytes: 0, loads: 3, what: 'with CHECKPOINT_KEEP_BYTES=0 replays each from the stored checkpoint' },
  ])('$what; every checkpoint is the log at its seq', async ({ keepBytes, loads }) => {
    const { storage, edit, expectExact } = liveDocuments(keepBytes);
    await edit(7);
    await edit(6);
    await edit(5);
    expect(storage.loads).toBe(loads);
    await expectExact([7, 13, 18]);
  });

  it('keeps the documents built last within CHECKPOINT_KEEP_BYTES, the oldest let go first and replayed from its stored checkpoint; one over the budget alone is not kept', async () => {
    const [first, second, third, huge] = ['first', 'second', 'third', 'huge'].map((id) => parseDocumentName(`acme/quote/${id}`));
    // Each of the three about 1.6 kB: two fit in the budget, not three.
    const { storage, edit, expectExact, failedWrites } = liveDocuments(4_000);
    for (const of of [first, second, third]) await edit(7, { of, opening: 'x'.repeat(1_500) });
    expect(storage.loads).toBe(3);
    await edit(6, { of: second });
    await edit(6, { of: third });
    expect(storage.loads).toBe(3);
    await edit(7, { of: huge, opening: 'x'.repeat(6_000) });
    expect(storage.loads).toBe(4);
    // Keeping nothing of the huge one let none of the others go; the first was let go for the third.
    await edit(6, { of: second });
    expect(storage.loads).toBe(4);
    await edit(6, { of: first });
    expect(storage.loads).toBe(5);
    expect(await failedWrites()).toBe(0);
    await expectExact([7, 13], first);
    await expectExact([7, 13, 19], second);
    await expectExact([7, 13], third);
    await expectExact([7], huge);
  });

  it('a kept document let go while its updates were being read is replayed from its stored checkpoint, without a failed write', async () => {
    const other = parseDocumentName('acme/quote/other');
    // Room for one of them.
    const { storage, edit, expectExact, failedWrites } = liveDocuments(2_500);
    await edit(7, { opening: 'x'.repeat(1_500) });
    let open = () => {};
    storage.gate = new Promise((resolve) => (open = resolve));
    // Its write reads the updates after the kept document and waits; meanwhile the other one's build lets it go.
    await edit(6, { wait: false });
    storage.gate = undefined;
    await edit(7, { of: other, opening: 'x'.repeat(1_500), wait: false });
    await expect.poll(() => checkpointer!.writesUnderWay).toBe(1);
    open();
    await expect.poll(() => checkpointer!.writesUnderWay).toBe(0);
    expect(storage.loads).toBe(3);
    expect(await failedWrites()).toBe(0);
    await expectExact([7, 13]);
    await expectExact([7], other);
  });

  it("a version read's checkpoint leaves the kept document as it was: the next one still starts from it", async () => {
    const { storage, edit, expectExact, live } = liveDocuments(1024 * 1024);
    await edit(7);
    await edit(3);
    await live.checkpointAt(document, 9);
    expect(storage.loads).toBe(2);
    await edit(3);
    expect(storage.loads).toBe(2);
    await expectExact([7, 9, 13]);
  });

  it('goes back to the stored checkpoint when updates after the kept document were pruned', async () => {
    const { storage, edit, expectExact, live } = liveDocuments(1024 * 1024);
    await edit(7);
    await edit(6);
    // Too few for a checkpoint of the live cadence; one written for a version read, and the log pruned up to it.
    await edit(3);
    await live.checkpointAt(document, 16);
    expect(await storage.prune(document, 16)).toBe(15);
    const before = storage.loads;
    await edit(4);
    expect(storage.loads).toBe(before + 1);
    await expectExact([16, 20]);
  });

  it('an unloaded document is let go: once loaded again, its next checkpoint is replayed from the stored one', async () => {
    const { storage, edit, expectExact, live } = liveDocuments(1024 * 1024);
    await edit(7);
    live.forget(document.name);
    live.advance(document, 7, 7);
    await edit(6);
    expect(storage.loads).toBe(2);
    await expectExact([7, 13]);
  });
});
