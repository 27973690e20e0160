import {
  isTransactionOrigin,
  type afterLoadDocumentPayload,
  type afterUnloadDocumentPayload,
  type beforeHandleMessagePayload,
  type beforeUnloadDocumentPayload,
  type connectedPayload,
  type Extension,
} from '@hocuspocus/server';
import type { ConnectionContext } from '../context.ts';
import { parseDocumentName, type DocumentName } from '../documents/name.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { holdsAll, readFrame, readUpdateReach } from '../protocol.ts';
import { AckGatedSocket } from './acknowledgements.ts';
import type { DocumentStore } from './document-store.ts';
import type { UpdateLog } from './update-log.ts';

/**
 * Puts every client update into the durable log and holds its
 * acknowledgement until it is committed. Broadcasting to other clients and
 * handling the sender's next messages never wait for Postgres.
 */
export class Persistence implements Extension {
  extensionName = 'concord-persistence';

  private readonly updateLog: UpdateLog;
  private readonly store: DocumentStore;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly maxBacklogBytes: number;

  constructor(updateLog: UpdateLog, store: DocumentStore, log: Logger, metrics: Metrics, maxBacklogBytes: number) {
    this.updateLog = updateLog;
    this.store = store;
    this.log = log;
    this.metrics = metrics;
    this.maxBacklogBytes = maxBacklogBytes;
  }

  /** Refuses malformed frames and updates before they are applied; puts writes through the ack gate. */
  async beforeHandleMessage({ connection, document, update }: beforeHandleMessagePayload): Promise<void> {
    const frame = readFrame(update);
    if (!frame.update) return;
    const reach = readUpdateReach(frame.update);
    if (!(connection.webSocket instanceof AckGatedSocket)) return;
    // While Postgres is away the backlog lives in memory: past the limit, writes
    // that bring anything new are refused (the client keeps them as unsynced)
    // instead of growing it.
    if (!connection.readOnly && this.updateLog.backlogBytes > this.maxBacklogBytes && !holdsAll(document, reach)) {
      this.metrics.refusals.inc({ code: 'storage-unavailable' });
      throw new ConcordError('storage-unavailable', 'Postgres is not keeping up; the change was not applied, retry shortly');
    }
    connection.webSocket.expectWrite(connection.messageAddress, {
      // Even a write that adds nothing new (a resend after a reconnect, say) is
      // acknowledged only once what the document holds is committed.
      earlier: this.updateLog.committedSoFar(document.name),
      parked: () => !holdsAll(document, reach),
    });
  }

  async connected({ connection }: connectedPayload): Promise<void> {
    const socket = connection.webSocket;
    if (socket instanceof AckGatedSocket) connection.onClose(() => socket.forget(connection.messageAddress));
  }

  async afterLoadDocument({ document }: afterLoadDocumentPayload): Promise<void> {
    const name = parseDocumentName(document.name);
    document.on('update', (update: Uint8Array, origin: unknown) => this.logUpdate(name, update, origin));
  }

  /**
   * Belt and braces to the store hook: a document with uncommitted updates
   * stays loaded, and is unloaded once they are committed (Hocuspocus itself
   * would not try again).
   */
  async beforeUnloadDocument({ instance, document, documentName }: beforeUnloadDocumentPayload): Promise<void> {
    if (!this.updateLog.hasPending(documentName)) return;
    void this.updateLog.whenDrained(documentName).then(() => instance.unloadDocument(document));
    throw new Error(`${documentName} still has updates that are not committed`);
  }

  async afterUnloadDocument({ documentName }: afterUnloadDocumentPayload): Promise<void> {
    this.store.unloaded(parseDocumentName(documentName));
  }

  // Runs inside Y.applyUpdate, where y-protocols swallows exceptions: it must not throw.
  private logUpdate(document: DocumentName, update: Uint8Array, origin: unknown): void {
    if (!isTransactionOrigin(origin) || origin.source !== 'connection') return;
    try {
      const { principal } = origin.connection.context as ConnectionContext;
      this.metrics.updatesReceived.inc();
      const committed = this.updateLog.append({ document, update, userId: principal.userId, origin: 'client', receivedAt: new Date() });
      const socket = origin.connection.webSocket;
      if (socket instanceof AckGatedSocket) socket.holdUntil(origin.connection.messageAddress, committed);
      committed.catch(() => {}); // the ack gate reacts to a failure; nothing else awaits this
    } catch (error) {
      this.log.error({ err: error, code: 'update-not-logged', document: document.name }, 'an update could not be queued for the log');
      origin.connection.close(new ConcordError('storage-unavailable', 'the update could not be queued for Postgres').closeEvent);
    }
  }
}
