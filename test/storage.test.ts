import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { Document } from '@hocuspocus/server';
import type { Database } from '../src/db/database.ts';
import { parseDocumentName } from '../src/documents/kinds.ts';
import type { DocumentName } from '../src/documents/name.ts';
import { applyStored, replay } from '../src/persistence/replay.ts';
import { MemoryStorage } from '../src/storage/memory.ts';
import { PostgresStorage } from '../src/storage/postgres.ts';
import type { LoadedLog, NewUpdate, Storage } from '../src/storage/storage.ts';
import { createStorage, postgresTitle, postgresUrl, type TestStorage } from './support/database.ts';
import { openMigratedDatabase } from './support/inspect.ts';

/** A storage to run the contract on, and how to let it go. */
interface Opened {
  storage: Storage;
  close(): Promise<void>;
}

async function openPostgres(kind: 'pglite' | 'postgres'): Promise<Opened> {
  const test: TestStorage = await createStorage(kind);
  const db: Database = await openMigratedDatabase(test);
  return {
    storage: new PostgresStorage(db),
    async close() {
      await db.close();
      await test.drop();
    },
  };
}

let documentCount = 0;

/** A document of its own for each test, so tests share nothing. */
function freshDocument(tenant = 'acme'): DocumentName {
  documentCount += 1;
  return parseDocumentName(`${tenant}/quote/storage-${documentCount}`);
}

/** A writer of real Yjs updates: each adds one number to the array `edits`. */
function writer() {
  const doc = new Y.Doc();
  return {
    doc,
    edit(value: number): Uint8Array {
      let update: Uint8Array | undefined;
      doc.once('update', (u: Uint8Array) => (update = u));
      doc.getArray<number>('edits').push([value]);
      return update!;
    },
  };
}

function newUpdate(document: DocumentName, update: Uint8Array): NewUpdate {
  return { document, update, userId: 'alice', origin: 'client', receivedAt: new Date() };
}

/** Appends `count` edits (values 1..count) to `document`, one batch each; the writer holds them all. */
async function appendEdits(storage: Storage, document: DocumentName, count: number, from = writer()) {
  const seqs: number[] = [];
  for (let index = 0; index < count; index++) seqs.push(...(await storage.append(document.tenant, [newUpdate(document, from.edit(from.doc.getArray('edits').length + 1))])));
  return { seqs, writer: from };
}

/** The state after the first `seq` logged updates, as a checkpoint holds it. */
async function stateAfter(storage: Storage, document: DocumentName, seq: number): Promise<Uint8Array> {
  const doc = replay(null, await storage.readUpdates(document, 0, seq));
  try {
    return Y.encodeStateAsUpdate(doc);
  } finally {
    doc.destroy();
  }
}

/** The edits a loaded log holds, replayed. */
function editsOf(loaded: Pick<LoadedLog, 'checkpoint' | 'tail'>): number[] {
  const doc = replay(loaded.checkpoint, loaded.tail);
  try {
    return doc.getArray<number>('edits').toArray();
  } finally {
    doc.destroy();
  }
}

/** The contract every `Storage` keeps (src/storage/storage.ts). */
function storageContract(open: () => Promise<Opened>) {
  let opened: Opened;
  let storage: Storage;

  beforeAll(async () => {
    opened = await open();
    storage = opened.storage;
  });
  afterAll(async () => {
    await opened?.close();
  });

  it('numbers each document’s updates 1, 2, 3... without gaps, in input order, across documents and batches', async () => {
    const first = freshDocument();
    const second = freshDocument();
    const [a, b] = [writer(), writer()];
    const batch = [newUpdate(first, a.edit(1)), newUpdate(second, b.edit(1)), newUpdate(first, a.edit(2)), newUpdate(first, a.edit(3)), newUpdate(second, b.edit(2))];
    expect(await storage.append('acme', batch)).toEqual([1, 1, 2, 3, 2]);
    expect(await storage.append('acme', [newUpdate(second, b.edit(3)), newUpdate(first, a.edit(4))])).toEqual([3, 4]);
    expect((await storage.readUpdates(first, 0)).map(({ seq }) => seq)).toEqual([1, 2, 3, 4]);
    expect((await storage.readUpdates(second, 0)).map(({ seq }) => seq)).toEqual([1, 2, 3]);
  });

  it('appends racing for one document still give every update its own seq, with no gap', async () => {
    const document = freshDocument();
    const writers = Array.from({ length: 6 }, () => writer());
    const seqs = (await Promise.all(writers.map((w, index) => storage.append('acme', [newUpdate(document, w.edit(index)), newUpdate(document, w.edit(index + 100))])))).flat();
    expect([...seqs].sort((x, y) => x - y)).toEqual(Array.from({ length: 12 }, (_, index) => index + 1));
    expect((await storage.bounds(document))!.latest).toBe(12);
  });

  it('reads the updates in (after, upto], in order and byte for byte', async () => {
    const document = freshDocument();
    const { writer: w } = await appendEdits(storage, document, 5);
    const all = await storage.readUpdates(document, 0);
    expect(all.map(({ seq }) => seq)).toEqual([1, 2, 3, 4, 5]);
    expect(editsOf({ checkpoint: null, tail: all })).toEqual(w.doc.getArray('edits').toArray());
    expect((await storage.readUpdates(document, 1, 3)).map(({ seq }) => seq)).toEqual([2, 3]);
    expect((await storage.readUpdates(document, 3)).map(({ seq }) => seq)).toEqual([4, 5]);
    expect(await storage.readUpdates(document, 5)).toEqual([]);
    expect(await storage.readUpdates(document, 2, 2)).toEqual([]);
    expect(Buffer.from((await storage.readUpdates(document, 3, 4))[0]!.update)).toEqual(Buffer.from(all[3]!.update));
  });

  it('loads nothing for a document never written', async () => {
    const document = freshDocument();
    expect(await storage.load(document)).toBeNull();
    expect(await storage.bounds(document)).toBeNull();
    expect(await storage.readUpdates(document, 0)).toEqual([]);
    expect(await storage.latestCheckpoint(document)).toBeNull();
  });

  it('loads the newest checkpoint and only the tail after it, at the latest version or at an earlier one', async () => {
    const document = freshDocument();
    await appendEdits(storage, document, 7);
    expect(editsOf((await storage.load(document))!)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect((await storage.load(document))!.checkpoint).toBeNull();

    await storage.writeCheckpoint(document, { seq: 3, state: await stateAfter(storage, document, 3) });
    await storage.writeCheckpoint(document, { seq: 5, state: await stateAfter(storage, document, 5) });
    const latest = (await storage.load(document))!;
    expect(latest.version).toBe(7);
    expect(latest.checkpoint!.seq).toBe(5);
    expect(latest.tail.map(({ seq }) => seq)).toEqual([6, 7]);
    expect(editsOf(latest)).toEqual([1, 2, 3, 4, 5, 6, 7]);

    const atFour = (await storage.load(document, 4))!;
    expect(atFour.version).toBe(4);
    expect(atFour.checkpoint!.seq).toBe(3);
    expect(atFour.tail.map(({ seq }) => seq)).toEqual([4]);
    expect(editsOf(atFour)).toEqual([1, 2, 3, 4]);

    const atTwo = (await storage.load(document, 2))!;
    expect(atTwo.checkpoint).toBeNull();
    expect(editsOf(atTwo)).toEqual([1, 2]);

    // Past the latest: the latest.
    expect((await storage.load(document, 99))!.version).toBe(7);
  });

  it('finds the newest checkpoint at or before a seq, and keeps the first one written at a seq', async () => {
    const document = freshDocument();
    await appendEdits(storage, document, 6);
    const atTwo = await stateAfter(storage, document, 2);
    await storage.writeCheckpoint(document, { seq: 2, state: atTwo });
    await storage.writeCheckpoint(document, { seq: 4, state: await stateAfter(storage, document, 4) });
    expect(await storage.latestCheckpointSeq(document, 1)).toBeNull();
    expect(await storage.latestCheckpointSeq(document, 2)).toBe(2);
    expect(await storage.latestCheckpointSeq(document, 3)).toBe(2);
    expect(await storage.latestCheckpointSeq(document, 6)).toBe(4);
    expect((await storage.latestCheckpoint(document))!.seq).toBe(4);
    expect((await storage.latestCheckpoint(document, 3))!.seq).toBe(2);
    expect(await storage.latestCheckpoint(document, 1)).toBeNull();

    await storage.writeCheckpoint(document, { seq: 2, state: await stateAfter(storage, document, 1) });
    expect(Buffer.from((await storage.latestCheckpoint(document, 2))!.state)).toEqual(Buffer.from(atTwo));
  });

  it('gives a version read the checkpoint’s compact state and the tail after it, and none where the checkpoint has no compact state', async () => {
    const document = freshDocument();
    expect(await storage.loadCompact(document, 1)).toBeNull();
    await appendEdits(storage, document, 6);
    // No checkpoint yet: the whole log.
    const bare = (await storage.loadCompact(document, 6))!;
    expect(bare.checkpoint).toBeNull();
    expect(bare.tail.map(({ seq }) => seq)).toEqual([1, 2, 3, 4, 5, 6]);

    const compact = Y.encodeStateAsUpdate(replay(null, await storage.readUpdates(document, 0, 3)));
    await storage.writeCheckpoint(document, { seq: 3, state: await stateAfter(storage, document, 3), compact });
    const atFive = (await storage.loadCompact(document, 5))!;
    expect(atFive.version).toBe(5);
    expect(atFive.checkpoint!.seq).toBe(3);
    expect(Buffer.from(atFive.checkpoint!.compact)).toEqual(Buffer.from(compact));
    expect(atFive.tail.map(({ seq }) => seq)).toEqual([4, 5]);
    // A load reads the state alone.
    expect((await storage.load(document))!.checkpoint!.compact).toBeUndefined();

    await storage.writeCheckpoint(document, { seq: 5, state: await stateAfter(storage, document, 5) });
    expect(await storage.loadCompact(document, 6)).toBeNull();
    expect((await storage.loadCompact(document, 4))!.checkpoint!.seq).toBe(3);
  });

  it('prunes updates before a seq only where a checkpoint is, and the bounds say from where history is exact', async () => {
    const document = freshDocument();
    await appendEdits(storage, document, 8);
    expect(await storage.bounds(document)).toEqual({ latest: 8, exactFrom: 0 });

    // No checkpoint at 5: nothing goes.
    expect(await storage.prune(document, 5)).toBe(0);
    expect((await storage.readUpdates(document, 0)).length).toBe(8);

    await storage.writeCheckpoint(document, { seq: 5, state: await stateAfter(storage, document, 5) });
    expect(await storage.prune(document, 5)).toBe(4);
    expect(await storage.bounds(document)).toEqual({ latest: 8, exactFrom: 5 });
    // Update 5 itself stays (it says when version 5 came).
    expect((await storage.readUpdates(document, 0)).map(({ seq }) => seq)).toEqual([5, 6, 7, 8]);

    // The document still loads whole, from the checkpoint.
    const loaded = (await storage.load(document))!;
    expect(loaded.checkpoint!.seq).toBe(5);
    expect(editsOf(loaded)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // A version before the checkpoint cannot be rebuilt: its tail has a hole.
    await expect(storage.load(document, 3)).rejects.toThrow(/not all in the log/);

    // Pruning again to the same seq deletes nothing more; the log grows on after it.
    expect(await storage.prune(document, 5)).toBe(0);
    expect(await storage.append('acme', [newUpdate(document, writer().edit(9))])).toEqual([9]);
    expect(await storage.bounds(document)).toEqual({ latest: 9, exactFrom: 5 });
  });

  it('a document is its tenant’s: under another tenant’s name nothing of it is seen, written or pruned', async () => {
    const document = freshDocument('acme');
    await appendEdits(storage, document, 3);
    await storage.writeCheckpoint(document, { seq: 2, state: await stateAfter(storage, document, 2) });
    const forged: DocumentName = { ...document, tenant: 'globex' };

    expect(await storage.load(forged)).toBeNull();
    expect(await storage.loadCompact(forged, 3)).toBeNull();
    expect(await storage.readUpdates(forged, 0)).toEqual([]);
    expect(await storage.latestCheckpoint(forged)).toBeNull();
    expect(await storage.latestCheckpointSeq(forged, 10)).toBeNull();
    expect(await storage.bounds(forged)).toBeNull();
    expect(await storage.prune(forged, 2)).toBe(0);
    await expect(storage.writeCheckpoint(forged, { seq: 3, state: await stateAfter(storage, document, 3) })).rejects.toThrow();

    // The same kind and id in another tenant is another document, with a log of its own.
    const theirs = parseDocumentName(`globex/${document.kind}/${document.id}`);
    expect(await storage.append('globex', [newUpdate(theirs, writer().edit(1))])).toEqual([1]);
    expect(await storage.bounds(theirs)).toEqual({ latest: 1, exactFrom: 0 });
    expect(await storage.bounds(document)).toEqual({ latest: 3, exactFrom: 0 });
    expect((await storage.readUpdates(document, 0)).length).toBe(3);
  });
}

describe('storage contract: memory', () => {
  storageContract(async () => ({ storage: new MemoryStorage(), close: async () => {} }));
});

describe('storage contract: PGlite', () => {
  storageContract(() => openPostgres('pglite'));
});

describe.skipIf(!postgresUrl)(postgresTitle('storage contract: PostgreSQL'), () => {
  storageContract(() => openPostgres('postgres'));
});

describe('applyStored: a stored log into a document others listen to', () => {
  it('applies the checkpoint and tail without emitting update, and its listeners hear the edits after', () => {
    const source = new Y.Doc();
    source.getText('notes').insert(0, 'checkpointed');
    const checkpoint = { seq: 1, state: Y.encodeStateAsUpdate(source) };
    const before = Y.encodeStateVector(source);
    source.getText('notes').insert(0, 'tail: ');
    const tail = [{ seq: 2, update: Y.encodeStateAsUpdate(source, before) }];

    // Hocuspocus's Document listens to update from its constructor.
    const into = new Document('acme/quote/quiet', {}, {});
    const heard: Uint8Array[] = [];
    into.on('update', (update: Uint8Array) => heard.push(update));
    applyStored(into, checkpoint, tail);
    expect(into.getText('notes').toString()).toBe('tail: checkpointed');
    expect(heard).toEqual([]);

    into.getText('notes').insert(0, '!');
    expect(heard).toHaveLength(1);
    into.destroy();
  });
});
