import * as Y from 'yjs';
import type { Database, Sql } from '../db/database.ts';
import type { Author } from '../context.ts';
import { clearTablesStale, documentVersion, ensureDocument, lockDocuments, markTablesStale } from '../db/documents.ts';
import { headerVersion } from '../db/tables.ts';
import { appendUpdates, readUpdates, type LoggedUpdate } from '../db/updates.ts';
import { kindOf } from '../documents/kinds.ts';
import type { DocumentName } from '../documents/name.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { replaceTables } from '../projection/tables.ts';
import { DocumentTracker } from '../projection/tracker.ts';
import type { Checkpointer } from './checkpoints.ts';
import { replay, stateAt } from './replay.ts';
import type { UpdateLog } from './update-log.ts';

/**
 * Loading and storing for @hocuspocus/extension-database (through the
 * persistence extension's `load`). The log is the source of truth: a load is the
 * latest checkpoint plus the updates after it, and a "store" only waits until
 * every update of the document is committed, so Hocuspocus unloads a
 * document only once nothing of it is at risk.
 */
export class DocumentStore {
  private readonly db: Database;
  private readonly updateLog: UpdateLog;
  private readonly checkpointer: Checkpointer;
  private readonly log: Logger;

  constructor(db: Database, updateLog: UpdateLog, checkpointer: Checkpointer, log: Logger) {
    this.db = db;
    this.log = log;
    this.updateLog = updateLog;
    this.checkpointer = checkpointer;
  }

  /**
   * Loads the document into `into` (Hocuspocus's, still empty): its latest
   * checkpoint, then the updates after it, applied one by one (merging them
   * first, or replaying into another Y.Doc and encoding that, would cost whole
   * extra passes over a long history's tombstones). Returns the seq it holds.
   */
  async load(document: DocumentName, into: Y.Doc): Promise<number> {
    let loaded;
    try {
      loaded = await this.db.transaction(document.tenant, async (sql) => {
        const { version, tablesStale } = await ensureDocument(sql, document);
        const tablesBehind = tablesStale || (await headerVersion(sql, kindOf(document.kind).tables.header, document.id)) !== version;
        return { version, tablesBehind, ...(await stateAt(sql, document.name, version)) };
      });
    } catch (error) {
      throw new ConcordError('storage-unavailable', `${document.name} could not be loaded from Postgres; try again shortly`, { cause: error });
    }
    const { version, checkpoint, tail, tablesBehind } = loaded;
    this.updateLog.noteVersion(document.name, version);
    this.checkpointer.advance(document, version, checkpoint?.seq ?? 0);
    if (checkpoint) Y.applyUpdate(into, checkpoint.state);
    for (const { update } of tail) Y.applyUpdate(into, update);
    if (version > 0 && tablesBehind) await this.rebuildTables(document, into, version);
    return version;
  }

  /**
   * The tables lag the log (they were added after the document was written,
   * or a projection failed): make them equal the document before it goes live
   * here. Under the document's row lock, and only if no one (another instance)
   * has logged an update since the replay: they wrote newer rows.
   */
  private async rebuildTables(document: DocumentName, doc: Y.Doc, version: number): Promise<void> {
    try {
      const rows = new DocumentTracker(kindOf(document.kind), doc, document.id).rows();
      await this.db.transaction(document.tenant, async (sql) => {
        await lockDocuments(sql, [document.name]);
        if ((await documentVersion(sql, document.name)) !== version) return;
        await replaceTables(sql, document, rows, version);
        await clearTablesStale(sql, document.name);
      });
    } catch (error) {
      // Stale tables are better than a document no one can open; the next load tries again.
      this.log.error({ err: error, code: 'tables-rebuild-failed', document: document.name }, 'the tables could not be rebuilt; the document loads regardless');
    }
  }

  /** The committed document at its latest version, as a fresh Y.Doc (the caller destroys it); null if it was never opened. */
  async read(document: DocumentName): Promise<{ version: number; doc: Y.Doc } | null> {
    const found = await this.db.transaction(document.tenant, async (sql) => {
      const version = await documentVersion(sql, document.name);
      return version === null ? null : { version, ...(await stateAt(sql, document.name, version)) };
    });
    return found && { version: found.version, doc: replay(found.checkpoint, found.tail) };
  }

  /** The document's last committed seq (0 when it was never written). */
  async version(document: DocumentName): Promise<number> {
    return (await this.db.transaction(document.tenant, (sql) => documentVersion(sql, document.name))) ?? 0;
  }

  /** The document's logged updates after `afterSeq`, in order. */
  async updatesAfter(document: DocumentName, afterSeq: number): Promise<LoggedUpdate[]> {
    return this.db.transaction(document.tenant, (sql) => readUpdates(sql, document.name, afterSeq));
  }

  /**
   * Logs, for `author`, the part of `update` the log does not hold; returns its
   * seq, or null when the log holds all of it. Under the document's row lock,
   * so of two instances doing this at once the second finds it logged.
   */
  async logUnlogged(document: DocumentName, update: Uint8Array, author: Author): Promise<number | null> {
    const seq = await this.db.transaction(document.tenant, async (sql) => {
      await lockDocuments(sql, [document.name]);
      const part = await partNotLogged(sql, document, update);
      if (!part) return null;
      const [logged] = await appendUpdates(sql, [{ document, update: part, ...author, receivedAt: new Date() }]);
      await markTablesStale(sql, [document.name]);
      return logged!;
    });
    if (seq !== null) {
      this.updateLog.noteVersion(document.name, seq);
      this.checkpointer.advance(document, seq);
    }
    return seq;
  }

  async allCommitted(document: DocumentName): Promise<void> {
    await this.updateLog.whenDrained(document.name);
  }

  unloaded(document: DocumentName): void {
    this.updateLog.forget(document.name);
    this.checkpointer.forget(document.name);
  }
}

async function partNotLogged(sql: Sql, document: DocumentName, update: Uint8Array): Promise<Uint8Array | null> {
  const version = (await documentVersion(sql, document.name)) ?? 0;
  const { checkpoint, tail } = await stateAt(sql, document.name, version);
  const logged = replay(checkpoint, tail);
  try {
    const part = Y.diffUpdate(update, Y.encodeStateVector(logged));
    return Y.snapshotContainsUpdate(Y.snapshot(logged), part) ? null : part;
  } finally {
    logged.destroy();
  }
}
