import type * as Y from 'yjs';
import { latestCheckpoint } from '../db/checkpoints.ts';
import type { Database, Sql } from '../db/database.ts';
import { historyBounds } from '../db/documents.ts';
import { seqReceivedBy, updatePage, type UpdateOrigin } from '../db/updates.ts';
import type { DocumentName } from '../documents/name.ts';
import { ConcordError } from '../errors.ts';
import type { Checkpointer } from '../persistence/checkpoints.ts';
import { replay, tailAfter } from '../persistence/replay.ts';

export interface HistoryBounds {
  /** The document's version: its last committed update. */
  latest: number;
  /** Every version from this one on is exact; 0 unless retention pruned older updates. */
  exactFrom: number;
}

/** A past version, rebuilt: the caller destroys `doc`. */
export interface Version extends HistoryBounds {
  version: number;
  /** The update that made this version (null for version 0, the empty document, and for versions kept only as a checkpoint). */
  update: { receivedAt: Date; userId: string; origin: UpdateOrigin } | null;
  doc: Y.Doc;
}

/**
 * Rebuilds any version of a document exactly: the newest checkpoint at or
 * before it plus the updates after that, applied one by one. Checkpoints are
 * at most CHECKPOINT_EVERY updates apart once a version has been read (where
 * they are further apart, the gap is filled first), so a read replays at most
 * that many updates however long the history is.
 */
export class Versions {
  private readonly db: Database;
  private readonly checkpointer: Checkpointer;

  constructor(db: Database, checkpointer: Checkpointer) {
    this.db = db;
    this.checkpointer = checkpointer;
  }

  /** The document's version and how far back its history is exact; not-found if it was never opened. */
  async bounds(document: DocumentName): Promise<HistoryBounds> {
    return this.db.transaction(document.tenant, (sql) => boundsOf(sql, document));
  }

  /** The document exactly as it was after update `seq` (0: before the first). */
  async read(document: DocumentName, seq: number): Promise<Version> {
    const found = (await this.readBounded(document, seq, true)) ?? (await this.readBounded(document, seq, false))!;
    return { ...found, doc: replay(found.checkpoint, found.tail) };
  }

  /** The version current at `at`: the one made by the last update received at or before it. */
  async seqAt(document: DocumentName, at: Date): Promise<number> {
    return this.db.transaction(document.tenant, async (sql) => {
      const { exactFrom } = await boundsOf(sql, document);
      const seq = await seqReceivedBy(sql, document.name, at);
      if (seq !== null) return seq;
      if (exactFrom > 0) throw new ConcordError('pruned', `${document.kind}/${document.id} at ${at.toISOString()} is older than the history kept (every version from ${exactFrom} on is kept)`);
      return 0;
    });
  }

  /** Null when the replay would be longer than the checkpoint spacing and `mayFill` (the gap is filled, then read again). */
  private async readBounded(document: DocumentName, seq: number, mayFill: boolean) {
    const found = await this.db.transaction(document.tenant, async (sql) => {
      const bounds = await boundsOf(sql, document);
      if (seq > bounds.latest) throw new ConcordError('not-found', `${document.kind}/${document.id} has no version ${seq}; its latest is ${bounds.latest}`);
      const checkpoint = await latestCheckpoint(sql, document.name, seq);
      const base = checkpoint?.seq ?? 0;
      if (seq < bounds.exactFrom && base !== seq) {
        throw new ConcordError('pruned', `version ${seq} of ${document.kind}/${document.id} is older than the history kept: every version from ${bounds.exactFrom} on is kept, older ones only where a checkpoint is (see exactCheckpoints in its history)`);
      }
      if (mayFill && seq - base > this.checkpointer.every) return null;
      const [update] = seq > 0 ? await updatePage(sql, document.name, seq - 1, 1) : [];
      return {
        ...bounds,
        version: seq,
        update: update?.seq === seq ? { receivedAt: update.received_at, userId: update.user_id, origin: update.origin } : null,
        checkpoint,
        tail: await tailAfter(sql, document.name, checkpoint, seq),
      };
    });
    if (found === null) await this.checkpointer.fill(document, seq);
    return found;
  }
}

async function boundsOf(sql: Sql, document: DocumentName): Promise<HistoryBounds> {
  const bounds = await historyBounds(sql, document.name);
  if (!bounds) throw new ConcordError('not-found', `${document.kind}/${document.id} does not exist`);
  return bounds;
}
