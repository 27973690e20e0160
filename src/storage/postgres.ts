import { insertCheckpoint, latestCheckpoint, latestCheckpointSeq, latestCompactCheckpoint, type Checkpoint } from '../db/checkpoints.ts';
import type { Database, Sql } from '../db/database.ts';
import { documentVersion, historyBounds } from '../db/documents.ts';
import { appendUpdates, pruneUpdatesBefore, readUpdates, type LoggedUpdate, type NewUpdate } from '../db/updates.ts';
import type { DocumentName } from '../documents/name.ts';
import { completeTail, type CompactLog, type HistoryBounds, type LoadedLog, type Storage } from './storage.ts';

/**
 * The log in Postgres (`pg` or PGlite: both are a `Database`), over the named
 * SQL functions of src/db. Each call is one transaction as the runtime role in
 * the document's tenant, so row-level security walls tenants apart; pruning
 * alone runs as `owner`, the role that owns the tables (the runtime role
 * cannot delete an update).
 */
export class PostgresStorage implements Storage {
  private readonly db: Database;
  private readonly owner: Database;

  constructor(db: Database, owner: Database = db) {
    this.db = db;
    this.owner = owner;
  }

  load(document: DocumentName, atSeq?: number): Promise<LoadedLog | null> {
    return this.db.transaction(document.tenant, async (sql) => {
      const version = await documentVersion(sql, document.name);
      if (version === null) return null;
      return logAt(sql, document.name, atSeq === undefined ? version : Math.min(atSeq, version));
    });
  }

  loadCompact(document: DocumentName, atSeq: number): Promise<CompactLog | null> {
    return this.db.transaction(document.tenant, async (sql) => {
      const latest = await documentVersion(sql, document.name);
      if (latest === null) return null;
      const version = Math.min(atSeq, latest);
      const found = await latestCompactCheckpoint(sql, document.name, version);
      if (found && !found.compact) return null;
      const checkpoint = found && { seq: found.seq, compact: found.compact! };
      return { version, checkpoint, tail: completeTail(document.name, checkpoint, version, await readUpdates(sql, document.name, checkpoint?.seq ?? 0, version)) };
    });
  }

  append(tenant: string, updates: NewUpdate[]): Promise<number[]> {
    return this.db.transaction(tenant, (sql) => appendUpdates(sql, updates));
  }

  readUpdates(document: DocumentName, afterSeq: number, uptoSeq?: number): Promise<LoggedUpdate[]> {
    return this.db.single(document.tenant, (sql) => readUpdates(sql, document.name, afterSeq, uptoSeq));
  }

  latestCheckpoint(document: DocumentName, atOrBeforeSeq?: number): Promise<Checkpoint | null> {
    return this.db.single(document.tenant, (sql) => latestCheckpoint(sql, document.name, atOrBeforeSeq));
  }

  latestCheckpointSeq(document: DocumentName, atOrBeforeSeq: number): Promise<number | null> {
    return this.db.single(document.tenant, (sql) => latestCheckpointSeq(sql, document.name, atOrBeforeSeq));
  }

  writeCheckpoint(document: DocumentName, checkpoint: Checkpoint): Promise<void> {
    return this.db.transaction(document.tenant, (sql) => insertCheckpoint(sql, document.name, checkpoint));
  }

  bounds(document: DocumentName): Promise<HistoryBounds | null> {
    return this.db.single(document.tenant, (sql) => historyBounds(sql, document.name));
  }

  prune(document: DocumentName, seq: number): Promise<number> {
    return this.owner.ownerTransaction((sql) => pruneUpdatesBefore(sql, document.tenant, document.name, seq));
  }

  /**
   * Runs `work` in one transaction of `tenant`: the update log's group
   * commit, which writes a batch's updates, the clientID claims made while
   * Postgres did not answer, and the commit pipeline's rows (audit, tables)
   * all or nothing. That is more than `append`, so it gets the transaction.
   */
  commit<T>(tenant: string, work: (sql: Sql) => Promise<T>): Promise<T> {
    return this.db.transaction(tenant, work);
  }
}

/** The log at `version` read in `sql`'s transaction: the newest checkpoint at or before it and the complete tail after that. */
export async function logAt(sql: Sql, name: string, version: number): Promise<LoadedLog> {
  const checkpoint = await latestCheckpoint(sql, name, version);
  return { version, checkpoint, tail: completeTail(name, checkpoint, version, await readUpdates(sql, name, checkpoint?.seq ?? 0, version)) };
}
