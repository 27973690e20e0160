import type { Statement } from '../db/database.ts';
import type { NewUpdate } from '../db/updates.ts';
import type { DocumentChanges } from '../projection/tracker.ts';
import type { DocumentReader, RowChanges } from '../projection/view.ts';
import type { Json } from '../json.ts';

/**
 * What an update changed (its field changes and the rows it touched), read by
 * its document's tracker while the transaction's deleted content was still
 * there, and a reader of the document's rows as they are when the commit
 * writes them.
 */
export interface UpdateChanges extends DocumentChanges {
  /** The header row and the current rows of the members with these ids (null: no such member now); of every member without ids. */
  rowsNow(memberIds?: ReadonlySet<string>): RowChanges;
  /** The fields of the collection's member with this id as they are now, or null. */
  memberNow(collection: string, id: string | null): Record<string, Json> | null;
}

/** What `reader` read of a transaction, with reads of the document as it is when the commit writes. */
export function updateChanges(changes: DocumentChanges, reader: DocumentReader): UpdateChanges {
  return new ReadChanges(changes, reader);
}

// A class, not an object of closures: one object per update waiting for its commit.
class ReadChanges implements UpdateChanges {
  readonly fieldChanges: DocumentChanges['fieldChanges'];
  readonly rows: RowChanges;
  private readonly reader: DocumentReader;

  constructor(changes: DocumentChanges, reader: DocumentReader) {
    this.fieldChanges = changes.fieldChanges;
    this.rows = changes.rows;
    this.reader = reader;
  }

  rowsNow(memberIds?: ReadonlySet<string>): RowChanges {
    return this.reader.rows(memberIds);
  }

  memberNow(collection: string, id: string | null): Record<string, Json> | null {
    return this.reader.members(collection).find((member) => member.id === id)?.fields ?? null;
  }
}

/** An update in the commit under way: its seq, and what it changed (none when reading its transaction failed). */
export interface CommitEntry {
  update: NewUpdate;
  seq: number;
  changes?: UpdateChanges;
  /** True while newer updates of its document wait to be committed here. */
  newerQueued(): boolean;
}

/** An entry whose changes are known: what a writer is given. */
export type TrackedEntry = Required<CommitEntry>;

/** What a writer adds to one commit. */
export interface PreparedWrite {
  statements: Statement[];
  /** Once the commit landed, with the results of `statements` in order. */
  committed(results: Array<{ rows: Record<string, unknown>[] }>): void;
}

/**
 * One kind of row a commit writes beside the log (the audit trail, the
 * tables): statements for a batch of updates, then what to remember once the
 * batch committed. Writers run in the order they are registered (src/server.ts)
 * and never see each other.
 */
export interface CommitWriter {
  /** Names the writer in logs. */
  readonly name: string;
  /**
   * Its rows must exist for every committed update (the change events): when
   * the writers' rows of a document cannot be written, the pipeline still
   * tries this writer's alone.
   */
  readonly essential?: boolean;
  prepare(entries: TrackedEntry[]): PreparedWrite;
  /** Drops what it remembers of these documents: unloaded, or a commit's outcome learned too late to remember it. */
  forget(names: string[]): void;
}
