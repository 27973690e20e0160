import type { Checkpoint } from '../db/checkpoints.ts';
import type { LoggedUpdate, NewUpdate } from '../db/updates.ts';
import type { DocumentName } from '../documents/name.ts';

export type { Checkpoint, LoggedUpdate, NewUpdate };

/** A document's log as it loads: the newest checkpoint at or before `version` and every update after it up to `version`. */
export interface LoadedLog {
  version: number;
  checkpoint: Checkpoint | null;
  tail: LoggedUpdate[];
}

/** A version's log as a version read starts from it: the newest checkpoint's compact state and the updates after it. */
export interface CompactLog {
  version: number;
  checkpoint: { seq: number; compact: Uint8Array } | null;
  tail: LoggedUpdate[];
}

/** How far back a document's history is exact. */
export interface HistoryBounds {
  /** The document's version: its last committed update. */
  latest: number;
  /** Every version from this one on is exact; 0 unless older updates were pruned. */
  exactFrom: number;
}

/**
 * Where documents' logs are kept (after y-redis's `AbstractStorage`): each
 * document is a log of Yjs updates numbered 1, 2, 3... without gaps, plus
 * checkpoints (the state at some seq) so that loading never replays the
 * whole log. A document belongs to its tenant: nothing of it is visible
 * under another tenant's name. Implementations: `PostgresStorage`
 * (postgres.ts, over `pg` or PGlite) and `MemoryStorage` (memory.ts); one
 * contract suite runs against both (test/storage.test.ts).
 *
 * Arguments are trusted (validated where they enter the server), so no
 * implementation checks them again.
 */
export interface Storage {
  /**
   * The document at its latest version, or at `atSeq` (at most its latest):
   * the newest checkpoint at or before that and the updates after it. Null
   * when the document does not exist.
   */
  load(document: DocumentName, atSeq?: number): Promise<LoadedLog | null>;
  /**
   * As `load` at `atSeq`, with the checkpoint's compact state instead of its
   * state. Null when the document does not exist, or when that checkpoint has
   * no compact state (written before they were).
   */
  loadCompact(document: DocumentName, atSeq: number): Promise<CompactLog | null>;
  /** Appends updates of one tenant's documents, in order; their seqs, in input order (each document's continue its log without a gap). */
  append(tenant: string, updates: NewUpdate[]): Promise<number[]>;
  /** The updates with seq in (afterSeq, uptoSeq], in order. */
  readUpdates(document: DocumentName, afterSeq: number, uptoSeq?: number): Promise<LoggedUpdate[]>;
  /** The newest checkpoint at or before `atOrBeforeSeq` (default: any). */
  latestCheckpoint(document: DocumentName, atOrBeforeSeq?: number): Promise<Checkpoint | null>;
  /** The seq of that checkpoint, without its state. */
  latestCheckpointSeq(document: DocumentName, atOrBeforeSeq: number): Promise<number | null>;
  /** Keeps a checkpoint, with its compact state if it has one; one already at that seq stays (both hold the same state: the log's at that seq). */
  writeCheckpoint(document: DocumentName, checkpoint: Checkpoint): Promise<void>;
  /** The document's version and how far back its history is exact; null when it does not exist. */
  bounds(document: DocumentName): Promise<HistoryBounds | null>;
  /**
   * Deletes the updates before `seq`, only if a checkpoint is at `seq` (the
   * document still loads and every version from `seq` on stays exact).
   * Returns how many were deleted.
   */
  prune(document: DocumentName, seq: number): Promise<number>;
}

/**
 * `tail` as the updates after `checkpoint` up to `version`; throws if one is
 * missing (pruned between reading the checkpoint and the updates): replaying
 * around a hole would give a wrong document, and reading again finds the
 * newer checkpoint.
 */
export function completeTail(name: string, checkpoint: { seq: number } | null, version: number, tail: LoggedUpdate[]): LoggedUpdate[] {
  const from = checkpoint?.seq ?? 0;
  if (tail.length !== version - from) throw new Error(`${name}: updates ${from + 1} to ${version} are not all in the log (pruned meanwhile?); read again`);
  return tail;
}
