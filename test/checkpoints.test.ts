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
  checkpointer = new Checkpointer(storage, EVERY, createLogger('silent', 2), metrics);
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
