import {
  isTransactionOrigin,
  type afterLoadDocumentPayload,
  type afterUnloadDocumentPayload,
  type beforeSyncPayload,
  type beforeUnloadDocumentPayload,
  type Extension,
} from '@hocuspocus/server';
import { messageYjsSyncStep1 } from 'y-protocols/sync';
import * as Y from 'yjs';
import { authorOf, transactionChanges } from '../context.ts';
import { parseDocumentName } from '../documents/kinds.ts';
import type { DocumentName } from '../documents/name.ts';
import { HookRefusal } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { DocumentStore } from '../persistence/document-store.ts';
import type { DocumentLoader } from '../persistence/extension.ts';
import type { LogFollower } from '../persistence/log-follower.ts';
import type { UpdateLog } from '../persistence/update-log.ts';
import type { DocumentCopy, RelayedRows } from '../projection/relayed-rows.ts';

export interface ClusterFollowerOptions {
  follower: LogFollower;
  rows: RelayedRows;
  updateLog: UpdateLog;
  log: Logger;
}

/** Loads through the store and seeds the follower's copy of the log with what was loaded, at the seq it was loaded at. */
export function followingLoads(store: DocumentStore, follower: LogFollower): DocumentLoader {
  return {
    async load(document, into, beforeApplying) {
      const seq = await store.load(document, into, beforeApplying);
      follower.loaded(document, Y.encodeStateAsUpdate(into), seq);
      return seq;
    },
  };
}

/**
 * With several instances (Redis configured), what this instance does with
 * content that reached it from the others, relayed (InstanceRelay, origin
 * `redis`; also content they parked, released here as relayed) or read from
 * the log; that content is never logged here:
 *
 * - before answering a client's first sync step, the document takes in what
 *   other instances logged and it lacks, so that the client does not send
 *   those updates back as its own;
 * - a relayed update is followed until its instance has logged it
 *   (LogFollower); until then the document stays loaded;
 * - the rows such content touched are written here too (RelayedRows), from
 *   what Projection read of the transaction.
 */
export class ClusterFollower implements Extension {
  extensionName = 'concord-cluster-follower';

  private readonly follower: LogFollower;
  private readonly rows: RelayedRows;
  private readonly updateLog: UpdateLog;
  private readonly log: Logger;

  constructor(options: ClusterFollowerOptions) {
    this.follower = options.follower;
    this.rows = options.rows;
    this.updateLog = options.updateLog;
    this.log = options.log;
  }

  async beforeSync({ documentName, document, type }: beforeSyncPayload): Promise<void> {
    if (type !== messageYjsSyncStep1) return;
    try {
      await this.follower.bringUpToLog(documentName, document);
    } catch (error) {
      this.log.warn({ err: error, code: 'catch-up-failed', document: documentName }, 'could not bring the document up to the log before a sync');
    }
  }

  async afterLoadDocument({ document }: afterLoadDocumentPayload): Promise<void> {
    const name = parseDocumentName(document.name);
    const copy = this.copyOf(name, document);
    // In `update`, after every `afterTransaction` listener: Projection's reading of the transaction is there.
    document.on('update', (update: Uint8Array, origin: unknown, _doc: Y.Doc, transaction: Y.Transaction) => {
      if (isTransactionOrigin(origin) && origin.source === 'redis') this.follower.relayed(name.name, update);
      if (authorOf(origin)) return;
      const changes = transactionChanges.get(transaction);
      if (changes && (changes.fieldChanges.length > 0 || changes.rows.members.size > 0)) this.rows.touched(name, changes.rows.members.keys(), { ...copy, rows: (ids) => changes.rowsNow(ids) });
    });
  }

  /** A document holding relayed updates not logged yet stays loaded until they are, then is unloaded. */
  async beforeUnloadDocument({ instance, document, documentName }: beforeUnloadDocumentPayload): Promise<void> {
    if (!this.follower.hasUnlogged(documentName)) return;
    void this.follower.logged(documentName).then(() => instance.unloadDocument(document));
    throw new HookRefusal(`${documentName} still has relayed updates that are not logged`);
  }

  async afterUnloadDocument({ documentName }: afterUnloadDocumentPayload): Promise<void> {
    this.follower.forget(documentName);
    this.rows.forget(documentName);
  }

  /** The document as the tables are written from it (see RelayedRows), but for its rows: Projection's tracker reads them. */
  private copyOf(name: DocumentName, document: Y.Doc): Omit<DocumentCopy, 'rows'> {
    return {
      upToLog: () => this.follower.bringUpToLog(name.name, document),
      holdsUnlogged: () => this.updateLog.hasPending(name.name) || this.follower.hasUnlogged(name.name),
    };
  }
}
