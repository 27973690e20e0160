import { insertCheckpoint, latestCheckpoint, latestCheckpointSeq, type Checkpoint } from '../db/checkpoints.ts';
import { runTogether, type Database, type Sql } from '../db/database.ts';
import { documentVersionStatement, historyBounds } from '../db/documents.ts';
import { logStatements, type CheckpointState } from '../db/log.ts';
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
    return this.db.single(document.tenant, (sql) => versionAndLog(sql, document.name, 'state', atSeq));
  }

  async loadCompact(document: DocumentName, atSeq: number): Promise<CompactLog | null> {
    const log = await this.db.single(document.tenant, (sql) => versionAndLog(sql, document.name, 'compact_state', atSeq));
    if (!log || (log.checkpoint && !log.checkpoint.state)) return null; // checkpointed before compact states were
    return { version: log.version, checkpoint: log.checkpoint && { seq: log.checkpoint.seq, compact: log.checkpoint.state }, tail: log.tail };
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

/** The log at `version` read in `sql`'s transaction, in one round trip: the newest checkpoint at or before it and the complete tail after that. */
export async function logAt(sql: Sql, name: string, version: number): Promise<LoadedLog> {
  return logFrom(name, version, await runTogether(sql, logStatements(name, 'state', version)));
}

/** The document's version and its log at `atSeq` (or that version, if lower), in one round trip; null when the document has no row. */
async function versionAndLog(sql: Sql, name: string, checkpointState: CheckpointState, atSeq = Number.MAX_SAFE_INTEGER): Promise<LoadedLog | null> {
  const [latest, ...log] = await runTogether(sql, [documentVersionStatement(name), ...logStatements(name, checkpointState, atSeq)]);
  if (latest!.rows.length === 0) return null;
  return logFrom(name, Math.min(atSeq, Number(latest!.rows[0]!.version)), log);
}

/** The log at `version` from the results of logStatements, checked complete. */
export function logFrom(name: string, version: number, [checkpointResult, tailResult]: Array<{ rows: Record<string, unknown>[] }>): LoadedLog {
  const found = checkpointResult!.rows[0] as { seq: number | string; state: Uint8Array } | undefined;
  const checkpoint = found ? { seq: Number(found.seq), state: found.state } : null;
  const tail = (tailResult!.rows as Array<{ seq: number | string; update: Uint8Array }>).map(({ seq, update }) => ({ seq: Number(seq), update }));
  return { version, checkpoint, tail: completeTail(name, checkpoint, version, tail) };
}
