import { Database as DatabaseExtension } from '@hocuspocus/extension-database';
import {
  isTransactionOrigin,
  type afterLoadDocumentPayload,
  type afterUnloadDocumentPayload,
  type beforeUnloadDocumentPayload,
  type onLoadDocumentPayload,
  type onStoreDocumentPayload,
} from '@hocuspocus/server';
import type * as Y from 'yjs';
import { authorOf, transactionChanges, transactionCommit, writerOf, type SocketContext } from '../context.ts';
import { parseDocumentName } from '../documents/kinds.ts';
import type { DocumentName } from '../documents/name.ts';
import { ConcordError, HookRefusal } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { DocumentStore } from './document-store.ts';
import type { UpdateLog } from './update-log.ts';

/**
 * Loads a document from the log into Hocuspocus's (still empty) document;
 * resolves with the seq it then holds. `beforeApplying` gets the stored
 * updates, in order, before they are applied.
 */
export interface DocumentLoader {
  load(document: DocumentName, into: Y.Doc, beforeApplying?: (stored: Uint8Array[]) => Promise<void>): Promise<number>;
}

/**
 * Stored content smaller than this is not sent ahead of the load: it loads
 * in milliseconds, and the sync answer would send it a second time.
 */
const SEND_AHEAD_MIN_BYTES = 64 * 1024;

export interface PersistenceOptions {
  store: DocumentStore;
  /** The store's own load, or with several instances one that also keeps the log's copy (see followingLoads). */
  loader: DocumentLoader;
  updateLog: UpdateLog;
  log: Logger;
  metrics: Metrics;
}

/**
 * Loads documents from the durable log and puts every client update and
 * server-side edit into it, as it is applied, with what it changed (read by
 * Projection in `afterTransaction`, which Yjs emits before `update`). The
 * commit's promise goes on the transaction (transactionCommit) for the
 * AcknowledgementGate. Broadcasting to other clients and handling the
 * sender's next messages never wait for Postgres.
 *
 * Built on @hocuspocus/extension-database: its fetch loads the log's
 * checkpoint and tail straight into Hocuspocus's document (so it answers
 * null: nothing is left to apply). Its store is replaced: the log is the
 * store, so a "store" only waits until every update of the document is
 * committed, and the whole-document encoding the extension's own
 * onStoreDocument makes for its `state` (on every debounced store, of every
 * document being edited) is never made.
 */
export class Persistence extends DatabaseExtension {
  extensionName = 'concord-persistence';

  private readonly store: DocumentStore;
  private readonly updateLog: UpdateLog;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  /** Documents being loaded, with the timer of their load. */
  private readonly loading = new WeakMap<Y.Doc, () => void>();

  constructor(options: PersistenceOptions) {
    super({
      fetch: async ({ document, documentName, context }) => {
        // A client opening the document over a socket gets its stored content while the server integrates it.
        const send = (context as Partial<SocketContext>).sendStoredContent;
        await options.loader.load(parseDocumentName(documentName), document, send && (async (stored) => {
          if (stored.reduce((bytes, update) => bytes + update.length, 0) >= SEND_AHEAD_MIN_BYTES) await send(documentName, stored);
        }));
        return null;
      },
    });
    this.store = options.store;
    this.updateLog = options.updateLog;
    this.log = options.log;
    this.metrics = options.metrics;
  }

  /** Timed until the document has been read through its layout: Projection's afterLoadDocument runs before this extension's. */
  override async onLoadDocument(payload: onLoadDocumentPayload): Promise<void> {
    this.loading.set(payload.document, this.metrics.documentLoad.startTimer());
    await super.onLoadDocument(payload);
  }

  async afterLoadDocument({ document }: afterLoadDocumentPayload): Promise<void> {
    const name = parseDocumentName(document.name);
    document.on('update', (update: Uint8Array, origin: unknown, _doc: Y.Doc, transaction: Y.Transaction) => this.logUpdate(name, update, origin, transaction));
    this.loading.get(document)?.();
    this.loading.delete(document);
  }

  /** Waits until every update of the document is committed, so that Hocuspocus unloads it only once nothing of it is at risk. */
  override async onStoreDocument({ documentName }: onStoreDocumentPayload): Promise<void> {
    await this.store.allCommitted(parseDocumentName(documentName));
  }

  /**
   * Belt and braces to the store hook: a document with uncommitted updates
   * stays loaded, and is unloaded once they are committed (Hocuspocus itself
   * would not try again).
   */
  async beforeUnloadDocument({ instance, document, documentName }: beforeUnloadDocumentPayload): Promise<void> {
    if (!this.updateLog.hasPending(documentName)) return;
    void this.updateLog.whenDrained(documentName).then(() => instance.unloadDocument(document));
    throw new HookRefusal(`${documentName} still has updates that are not logged`);
  }

  async afterUnloadDocument({ documentName }: afterUnloadDocumentPayload): Promise<void> {
    this.store.unloaded(parseDocumentName(documentName));
  }

  // Runs inside Y.applyUpdate, where y-protocols swallows exceptions: it must not throw.
  private logUpdate(document: DocumentName, update: Uint8Array, origin: unknown, transaction: Y.Transaction): void {
    const author = authorOf(origin);
    if (!author) return;
    try {
      this.metrics.updatesReceived.inc();
      const committed = this.updateLog.append({ document, update, ...author, receivedAt: new Date(), changes: transactionChanges.get(transaction) });
      committed.catch(() => {}); // the acknowledgement gate or the edit's caller reacts to a failure
      transactionCommit.set(transaction, committed);
    } catch (error) {
      this.log.error({ err: error, code: 'update-not-logged', document: document.name }, 'an update could not be queued for the log');
      // Its writer (a client, or the sender of parked writes it released) keeps it as unsynced and sends it again.
      writerOf(origin)?.close(new ConcordError('storage-unavailable', 'the update could not be queued for Postgres').closeEvent);
    }
  }
}
