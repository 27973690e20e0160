import { checkpointSeqsBelow, latestCheckpointSeq } from '../db/checkpoints.ts';
import type { Database } from '../db/database.ts';
import { historyBounds, listDocuments, type DocumentEntry } from '../db/documents.ts';
import { fieldChangePage, fieldsTouched, type FieldChangeFilter, type FieldTouch, type StoredFieldChange } from '../db/field-changes.ts';
import { documentsWithUpdatesBefore, seqReceivedBy, seqsReceivedBefore, updatePage, type UpdateEntry } from '../db/updates.ts';
import type { DocumentName } from '../documents/name.ts';
import { PostgresStorage } from './postgres.ts';
import type { HistoryBounds } from './storage.ts';

/**
 * What the history reads from Postgres besides the log's updates and
 * checkpoints: who sent each update and when, the audit rows, the documents
 * list. Postgres-only, so not part of `Storage`; each method is one
 * transaction of the tenant.
 */
export class PostgresHistory {
  private readonly db: Database;

  constructor(db: Database) {
    this.db = db;
  }

  /** The tenant's documents in name order after `afterName`, up to `limit`; only those named in `only`, if given. */
  documents(tenant: string, afterName: string, limit: number, only?: string[]): Promise<DocumentEntry[]> {
    return this.db.single(tenant, (sql) => listDocuments(sql, afterName, limit, only));
  }

  /**
   * Up to `limit` updates after `afterSeq` without their content; the audit
   * rows touching the first `shown` of them; and, when history was pruned
   * below `exactFrom`, the seqs of the checkpoints kept there.
   */
  updatePage(document: DocumentName, afterSeq: number, limit: number, shown: number, exactFrom: number): Promise<{ updates: UpdateEntry[]; touched: FieldTouch[]; exactCheckpoints: number[] }> {
    return this.db.transaction(document.tenant, async (sql) => {
      const updates = await updatePage(sql, document.name, afterSeq, limit);
      const listed = updates.slice(0, shown);
      const touched = listed.length > 0 ? await fieldsTouched(sql, document.name, listed[0]!.seq, listed.at(-1)!.seq) : [];
      const exactCheckpoints = exactFrom > 0 ? await checkpointSeqsBelow(sql, document.name, exactFrom) : [];
      return { updates, touched, exactCheckpoints };
    });
  }

  /** Up to `limit` audit rows matching `filter` after id `afterId`, in the order they were written. */
  fieldChanges(document: DocumentName, filter: FieldChangeFilter, afterId: number, limit: number): Promise<StoredFieldChange[]> {
    return this.db.single(document.tenant, (sql) => fieldChangePage(sql, document.name, filter, afterId, limit));
  }

  /**
   * What is known of version `seq`: the document's bounds (null when it does
   * not exist); whether a checkpoint is at exactly `seq` (asked only below
   * `exactFrom`, where nothing else holds a version); the update that made it.
   */
  version(document: DocumentName, seq: number): Promise<{ bounds: HistoryBounds | null; checkpointed: boolean; update: UpdateEntry | null }> {
    return this.db.transaction(document.tenant, async (sql) => {
      const bounds = await historyBounds(sql, document.name);
      if (!bounds || seq > bounds.latest) return { bounds, checkpointed: false, update: null };
      const checkpointed = seq < bounds.exactFrom && (await latestCheckpointSeq(sql, document.name, seq)) === seq;
      if (seq < bounds.exactFrom && !checkpointed) return { bounds, checkpointed, update: null };
      const [update] = seq > 0 ? await updatePage(sql, document.name, seq - 1, 1) : [];
      return { bounds, checkpointed, update: update?.seq === seq ? update : null };
    });
  }

  /** The document's bounds (null when it does not exist) and the seq of the last update received at or before `at` (ties: the higher seq). */
  seqReceivedBy(document: DocumentName, at: Date): Promise<{ bounds: HistoryBounds | null; seq: number | null }> {
    return this.db.transaction(document.tenant, async (sql) => {
      const bounds = await historyBounds(sql, document.name);
      return { bounds, seq: bounds && (await seqReceivedBy(sql, document.name, at)) };
    });
  }
}

/**
 * Retention's view of Postgres (history/retention.ts): the documents holding
 * old updates, across tenants, and for one of them the prefix of its log
 * received before a moment. `storage` prunes as `owner`, the role that owns
 * the tables: only it deletes updates.
 */
export class PostgresRetention {
  readonly storage: PostgresStorage;
  private readonly db: Database;
  private readonly owner: Database;

  constructor(db: Database, owner: Database) {
    this.db = db;
    this.owner = owner;
    this.storage = new PostgresStorage(db, owner);
  }

  /** Documents of every tenant that still log an update received before `before`. */
  documentsWithUpdatesBefore(before: Date): Promise<Array<{ tenant_id: string; name: string }>> {
    return this.owner.ownerTransaction((sql) => documentsWithUpdatesBefore(sql, before));
  }

  /** The last seq up to which every update was received before `before` (0: none), and how far back the history is exact now. */
  prefixBefore(document: DocumentName, before: Date): Promise<{ upto: number; exactFrom: number }> {
    return this.db.transaction(document.tenant, async (sql) => ({
      upto: await seqsReceivedBefore(sql, document.name, before),
      exactFrom: (await historyBounds(sql, document.name))?.exactFrom ?? 0,
    }));
  }
}
