import * as Y from 'yjs';
import { latestCheckpoint } from '../db/checkpoints.ts';
import type { Database } from '../db/database.ts';
import { ensureDocument } from '../db/documents.ts';
import { readUpdates } from '../db/updates.ts';
import type { DocumentName } from '../documents/name.ts';
import { ConcordError } from '../errors.ts';
import type { Checkpointer } from './checkpoints.ts';
import { replay } from './replay.ts';
import type { UpdateLog } from './update-log.ts';

/**
 * Loading and storing for @hocuspocus/extension-database. The log is the
 * source of truth: a load is the latest checkpoint plus the updates after it,
 * and a "store" only waits until every update of the document is committed,
 * so Hocuspocus unloads a document only once nothing of it is at risk.
 */
export class DocumentStore {
  private readonly db: Database;
  private readonly updateLog: UpdateLog;
  private readonly checkpointer: Checkpointer;

  constructor(db: Database, updateLog: UpdateLog, checkpointer: Checkpointer) {
    this.db = db;
    this.updateLog = updateLog;
    this.checkpointer = checkpointer;
  }

  async load(document: DocumentName): Promise<Uint8Array> {
    let loaded;
    try {
      loaded = await this.db.transaction(document.tenant, async (sql) => {
        const version = await ensureDocument(sql, document);
        const checkpoint = await latestCheckpoint(sql, document.name);
        const tail = await readUpdates(sql, document.name, checkpoint?.seq ?? 0);
        return { version, checkpoint, tail };
      });
    } catch (error) {
      throw new ConcordError('storage-unavailable', `${document.name} could not be loaded from Postgres; try again shortly`, { cause: error });
    }
    const { version, checkpoint, tail } = loaded;
    this.updateLog.noteVersion(document.name, version);
    this.checkpointer.advance(document, version, checkpoint?.seq ?? 0);
    const doc = replay(checkpoint, tail);
    const state = Y.encodeStateAsUpdate(doc);
    doc.destroy();
    return state;
  }

  async allCommitted(document: DocumentName): Promise<void> {
    await this.updateLog.whenDrained(document.name);
  }

  unloaded(document: DocumentName): void {
    this.updateLog.forget(document.name);
    this.checkpointer.forget(document.name);
  }
}
