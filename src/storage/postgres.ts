import { insertCheckpoint, latestCheckpoint, latestCheckpointSeq, type Checkpoint } from '../db/checkpoints.ts';
import type { Database, Sql } from '../db/database.ts';
import { historyBounds } from '../db/documents.ts';
import { logStatement, type CheckpointState, type LogRow } from '../db/log.ts';
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
    return this.db.single(document.tenant, (sql) => readLog(sql, document.name, 'state', atSeq));
  }

  async loadCompact(document: DocumentName, atSeq: number): Promise<CompactLog | null> {
    const log = await this.db.single(document.tenant, (sql) => readLog(sql, document.name, 'compact_state', atSeq));
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

/** The log at `atSeq` (or the document's version, if lower) in one statement (logStatement); null when the document has no row. */
export async function readLog(sql: Sql, name: string, checkpointState: CheckpointState, atSeq?: number): Promise<LoadedLog | null> {
  const { text, params } = logStatement(name, checkpointState, atSeq);
  return logFrom(name, (await sql.query<LogRow>(text, params)).rows);
}

/**
 * The log logStatement's rows hold, checked complete; null when the document
 * has no row. A checkpoint's state is never NULL, its compact state is for a
 * checkpoint written before compact states were (loadCompact checks).
 */
export function logFrom(name: string, rows: LogRow[]): LoadedLog | null {
  const [bound, ...rest] = rows;
  if (bound?.part !== 0) return null;
  const version = Number(bound.seq);
  const found = rest[0]?.part === 1 ? rest.shift() : undefined;
  const checkpoint = found ? { seq: Number(found.seq), state: found.bytes as Uint8Array } : null;
  const tail = rest.map(({ seq, bytes }) => ({ seq: Number(seq), update: bytes as Uint8Array }));
  return { version, checkpoint, tail: completeTail(name, checkpoint, version, tail) };
}
