import { setImmediate as nextTurn } from 'node:timers/promises';
import * as Y from 'yjs';
import type { UpdateOrigin } from '../db/updates.ts';
import { kindOf } from '../documents/kinds.ts';
import type { DocumentName } from '../documents/name.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Checkpointer } from '../persistence/checkpoints.ts';
import { applyTailToCompact } from '../persistence/compact.ts';
import { replay } from '../persistence/replay.ts';
import type { PostgresHistory } from '../storage/postgres-history.ts';
import type { HistoryBounds, Storage } from '../storage/storage.ts';
import { HistoryReplica } from './replica.ts';

export type { HistoryBounds };

/** Updates read per query while building a replica, and applied between two turns of the event loop. */
const READ_CHUNK = 2_000;
const APPLY_CHUNK = 250;

/** A past version, rebuilt: the caller destroys `doc`. */
export interface Version extends HistoryBounds {
  version: number;
  /** The update that made this version (null for version 0, the empty document, and for versions kept only as a checkpoint). */
  update: { receivedAt: Date; userId: string; origin: UpdateOrigin } | null;
  doc: Y.Doc;
  /** Where it was rebuilt from: the history replica in memory, a checkpoint's compact state and the tail, or the checkpoint's exact state and the tail. */
  from: 'replica' | 'compact' | 'log';
}

/** A replica in memory, with its reads and catch-ups one after the other. */
interface Held {
  replica: HistoryReplica;
  queue: Promise<unknown>;
}

/**
 * Rebuilds any version of a document exactly, two ways:
 *  - from the log: the newest checkpoint at or before it plus the updates
 *    after that, applied one by one. Where the newest checkpoint is more than
 *    CHECKPOINT_EVERY updates back, checkpoints are written up to the version
 *    first, so this replays at most that many updates from then on. The
 *    checkpoint's compact state (persistence/compact.ts) is applied, unless
 *    the tail refers to what it leaves out. Applying it still costs in
 *    proportion to the document's history (deleted text included), so for
 *    long histories:
 *  - from a history replica (replica.ts): built in the background, a little
 *    at a time, after the first read of a document, and kept for the few most
 *    recently read documents; it copies any version out without applying
 *    anything, and catches up with the log as the document grows.
 */
export class Versions {
  private readonly storage: Storage;
  private readonly stored: PostgresHistory;
  private readonly checkpointer: Checkpointer;
  private readonly log: Logger;
  /** How many documents' replicas are kept (the most recently read); 0 reads every version from the log. */
  private readonly replicasKept: number;
  private readonly replicas = new Map<string, Held>();
  private readonly building = new Map<string, Promise<void>>();

  constructor(storage: Storage, stored: PostgresHistory, checkpointer: Checkpointer, log: Logger, replicasKept: number) {
    this.storage = storage;
    this.stored = stored;
    this.checkpointer = checkpointer;
    this.log = log;
    this.replicasKept = replicasKept;
  }

  /** The document's version and how far back its history is exact; not-found if it was never opened. */
  async bounds(document: DocumentName): Promise<HistoryBounds> {
    return found(document, await this.storage.bounds(document));
  }

  /** The document exactly as it was after update `seq` (0: before the first). */
  async read(document: DocumentName, seq: number): Promise<Version> {
    const known = await this.stored.version(document, seq);
    const bounds = found(document, known.bounds);
    if (seq > bounds.latest) throw new ConcordError('not-found', `${document.kind}/${document.id} has no version ${seq}; its latest is ${bounds.latest}`);
    if (seq < bounds.exactFrom && !known.checkpointed) {
      throw new ConcordError('pruned', `version ${seq} of ${document.kind}/${document.id} is older than the history kept: every version from ${bounds.exactFrom} on is kept, older ones only where a checkpoint is (see exactCheckpoints in its history)`);
    }
    const update = known.update && { receivedAt: known.update.received_at, userId: known.update.user_id, origin: known.update.origin };
    const copied = await this.fromReplica(document, seq);
    this.keepReplica(document, bounds);
    return { ...bounds, version: seq, update, ...(copied ? { doc: copied, from: 'replica' } : await this.fromLog(document, seq)) };
  }

  /** The version current at `at`: the one made by the last update received at or before it. */
  async seqAt(document: DocumentName, at: Date): Promise<number> {
    const received = await this.stored.seqReceivedBy(document, at);
    const { exactFrom } = found(document, received.bounds);
    if (received.seq !== null) return received.seq;
    if (exactFrom > 0) throw new ConcordError('pruned', `${document.kind}/${document.id} at ${at.toISOString()} is older than the history kept (every version from ${exactFrom} on is kept)`);
    return 0;
  }

  /**
   * Checkpoint and tail; if the tail would be longer than CHECKPOINT_EVERY,
   * checkpoints are written up to `seq` first. From the checkpoint's compact
   * state where the tail allows it, else from its state.
   */
  private async fromLog(document: DocumentName, seq: number): Promise<{ doc: Y.Doc; from: 'compact' | 'log' }> {
    await this.checkpointer.checkpointNear(document, seq);
    const compact = await this.storage.loadCompact(document, seq);
    if (compact) {
      const doc = new Y.Doc();
      if (compact.checkpoint) Y.applyUpdate(doc, compact.checkpoint.compact);
      if (applyTailToCompact(doc, compact.tail.map(({ update }) => update))) return { doc, from: 'compact' };
      doc.destroy();
    }
    const logged = await this.storage.load(document, seq);
    if (!logged) throw new ConcordError('not-found', `${document.kind}/${document.id} does not exist`);
    return { doc: replay(logged.checkpoint, logged.tail), from: 'log' };
  }

  /** The version copied out of the document's replica, caught up to it first; null when there is none that holds it. */
  private async fromReplica(document: DocumentName, seq: number): Promise<Y.Doc | null> {
    const held = this.replicas.get(document.name);
    if (!held || seq < held.replica.base) return null;
    // Most recently used last.
    this.replicas.delete(document.name);
    this.replicas.set(document.name, held);
    const copied = held.queue.then(async () => {
      if (held.replica.seq < seq) await this.catchUp(document, held.replica, seq);
      return held.replica.versionDoc(kindOf(document.kind).layout, seq);
    });
    held.queue = copied.catch(() => {});
    try {
      return await copied;
    } catch (error) {
      // Its next updates were pruned meanwhile, say: start again from the log.
      if (this.replicas.get(document.name) === held) this.replicas.delete(document.name);
      this.log.warn({ err: error, code: 'history-replica-dropped', document: document.name }, 'a history replica could not catch up; reading from the log');
      return null;
    }
  }

  /** Builds a replica of the document in the background, unless one is kept or under way. */
  private keepReplica(document: DocumentName, bounds: HistoryBounds): void {
    if (this.replicasKept === 0 || this.replicas.has(document.name) || this.building.has(document.name)) return;
    const build = this.build(document, bounds)
      .then((replica) => {
        this.replicas.set(document.name, { replica, queue: Promise.resolve() });
        for (const name of this.replicas.keys()) if (this.replicas.size > this.replicasKept) this.replicas.delete(name);
      })
      .catch((error) => this.log.warn({ err: error, code: 'history-replica-failed', document: document.name }, 'a history replica could not be built; versions are read from the log'))
      .finally(() => this.building.delete(document.name));
    this.building.set(document.name, build);
  }

  private async build(document: DocumentName, bounds: HistoryBounds): Promise<HistoryReplica> {
    // Retention keeps a checkpoint where the log now starts.
    const base = bounds.exactFrom > 0 ? await this.storage.latestCheckpoint(document, bounds.exactFrom) : null;
    const replica = new HistoryReplica(base);
    for (;;) {
      const before = replica.seq;
      await this.catchUp(document, replica, before + READ_CHUNK);
      if (replica.seq === before) return replica;
    }
  }

  /** Applies the logged updates after the replica's version up to `seq` (fewer if the log ends earlier), a few at a time. */
  private async catchUp(document: DocumentName, replica: HistoryReplica, seq: number): Promise<void> {
    const updates = await this.storage.readUpdates(document, replica.seq, seq);
    for (let index = 0; index < updates.length; index++) {
      replica.apply(updates[index]!.seq, updates[index]!.update);
      // Building a long history must not hold up the edits this process relays.
      if ((index + 1) % APPLY_CHUNK === 0) await nextTurn();
    }
  }
}

/** The bounds of a document that exists; not-found otherwise. */
function found(document: DocumentName, bounds: HistoryBounds | null): HistoryBounds {
  if (!bounds) throw new ConcordError('not-found', `${document.kind}/${document.id} does not exist`);
  return bounds;
}
