import {
  isTransactionOrigin,
  type Connection,
  type Document,
  type afterLoadDocumentPayload,
  type afterUnloadDocumentPayload,
  type beforeHandleMessagePayload,
  type beforeSyncPayload,
  type beforeUnloadDocumentPayload,
  type connectedPayload,
  type onLoadDocumentPayload,
  type Extension,
} from '@hocuspocus/server';
import { messageYjsSyncStep1 } from 'y-protocols/sync';
import * as Y from 'yjs';
import type { CommitPipeline } from '../commit/pipeline.ts';
import type { UpdateChanges } from '../commit/writer.ts';
import { authorOf, isServerEdit, type ConnectionContext } from '../context.ts';
import { toPgJson } from '../db/json.ts';
import { kindOf, parseDocumentName } from '../documents/kinds.ts';
import { type DocumentName } from '../documents/name.ts';
import { ConcordError, HookRefusal } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { DocumentCopy, RelayedRows } from '../projection/relayed-rows.ts';
import { DocumentTracker } from '../projection/tracker.ts';
import type { LayoutViolation } from '../projection/view.ts';
import { readFrame, readUpdateReach } from '../protocol.ts';
import { AckGatedSocket } from './acknowledgements.ts';
import type { DocumentStore } from './document-store.ts';
import { ParkedWrites, parkedBytes, type ParkingLimit, type ParkingLimits } from './parked-writes.ts';
import type { LogFollower } from './log-follower.ts';
import type { UpdateLog } from './update-log.ts';

/** With several instances: what is done with content relayed from the others (never logged here, see InstanceRelay). */
export interface RelayedContent {
  rows: RelayedRows;
  follower: LogFollower;
}

/** What the update log may hold uncommitted, and what a document may hold parked. */
export interface PersistenceLimits {
  /** MAX_BACKLOG_BYTES */
  maxBacklogBytes: number;
  parking: ParkingLimits;
}

/**
 * Refuses the write being handled and closes the document's connection
 * without throwing inside Hocuspocus (which would print the error beside the
 * JSON log): Hocuspocus drops a read-only connection's writes, this one's and
 * any still queued behind it, and answers them "not applied".
 */
function refuseAndClose(connection: Connection, error: ConcordError): void {
  connection.readOnly = true;
  connection.close(error.closeEvent);
}

function isRelayed(origin: unknown): boolean {
  return isTransactionOrigin(origin) && origin.source === 'redis';
}

/**
 * Puts every client update and server-side edit into the durable log, with
 * what it changed (read by the document's tracker while the transaction's
 * deleted content is still there), and holds a client's acknowledgement until
 * it is committed. Broadcasting to other clients and handling the sender's next
 * messages never wait for Postgres.
 */
export class Persistence implements Extension {
  extensionName = 'concord-persistence';

  private readonly updateLog: UpdateLog;
  private readonly store: DocumentStore;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly pipeline: CommitPipeline;
  private readonly maxBacklogBytes: number;
  private readonly relayed?: RelayedContent;
  private readonly parked: ParkedWrites;
  /** What each logged transaction changed, from `afterTransaction` until its `update` event. */
  private readonly changesOf = new WeakMap<Y.Transaction, UpdateChanges>();
  /** Documents being loaded, with the timer of their load. */
  private readonly loading = new WeakMap<Y.Doc, () => void>();

  constructor(
    updateLog: UpdateLog,
    store: DocumentStore,
    pipeline: CommitPipeline,
    log: Logger,
    metrics: Metrics,
    limits: PersistenceLimits,
    relayed?: RelayedContent,
  ) {
    this.relayed = relayed;
    this.updateLog = updateLog;
    this.store = store;
    this.pipeline = pipeline;
    this.log = log;
    this.metrics = metrics;
    this.maxBacklogBytes = limits.maxBacklogBytes;
    this.parked = new ParkedWrites(limits.parking, {
      committedSoFar: (document) => this.committedSoFar(document),
      logAlone: (document, write) =>
        this.updateLog.append({ document: parseDocumentName(document.name), update: write.update, userId: write.userId, origin: 'client', receivedAt: new Date() }),
      dropped: (document, connections, limit) => this.parkedDropped(document, connections, limit),
    });
  }

  /**
   * Refuses malformed frames and updates before they are applied, and writes
   * Yjs would park beyond MAX_PENDING_BYTES or MAX_PENDING_WRITES; puts writes
   * through the ack gate.
   */
  async beforeHandleMessage({ connection, document, update }: beforeHandleMessagePayload): Promise<void> {
    const frame = readFrame(update);
    if (!frame.update) return;
    const reach = readUpdateReach(frame.update);
    if (!(connection.webSocket instanceof AckGatedSocket)) return;
    // Hocuspocus answers a read-only connection's write itself, without applying it.
    const applies = !connection.readOnly;
    // While Postgres is away the backlog lives in memory: past the limit, writes
    // that bring anything new are refused (the client keeps them as unsynced)
    // instead of growing it.
    if (applies && this.updateLog.backlogBytes > this.maxBacklogBytes && !reach.heldBy(document)) {
      this.metrics.refusals.inc({ code: 'storage-unavailable' });
      return refuseAndClose(connection, new ConcordError('storage-unavailable', 'Postgres is not keeping up; the change was not applied, retry shortly'));
    }
    const bytes = parkedBytes(frame.update, reach);
    const exceeded = applies && !reach.appliesTo(document) ? this.parked.exceeded(document, bytes) : null;
    if (exceeded) {
      refuseAndClose(connection, this.pendingRefusal(connection, exceeded));
      // What is parked already costs every later write of the document: it goes too.
      this.parked.drop(document, exceeded);
      return;
    }
    connection.webSocket.expectWrite(connection.messageAddress, {
      // Even a write that adds nothing new (a resend after a reconnect, say) is
      // acknowledged only once what the document holds is committed, including
      // what other instances relayed to it.
      earlier: this.committedSoFar(document.name),
      parked: () =>
        applies && !reach.heldBy(document)
          ? this.parked.park(document, connection, { update: frame.update!, userId: (connection.context as ConnectionContext).principal.userId, reach, bytes })
          : undefined,
    });
  }

  /**
   * Before answering a client's first sync step, with several instances: the
   * document takes in what other instances logged and it lacks, so that the
   * client does not send those updates back as its own.
   */
  async beforeSync({ documentName, document, type }: beforeSyncPayload): Promise<void> {
    if (!this.relayed || type !== messageYjsSyncStep1) return;
    try {
      await this.relayed.follower.bringUpToLog(documentName, document);
    } catch (error) {
      this.log.warn({ err: error, code: 'catch-up-failed', document: documentName }, 'could not bring the document up to the log before a sync');
    }
  }

  async connected({ connection }: connectedPayload): Promise<void> {
    const socket = connection.webSocket;
    if (socket instanceof AckGatedSocket) connection.onClose(() => socket.forget(connection.messageAddress));
  }

  /**
   * Loads the document from the log straight into Hocuspocus's (still empty)
   * document, for @hocuspocus/extension-database's fetch; timed until the
   * tracker has read it, in afterLoadDocument.
   */
  async load({ document, documentName }: Pick<onLoadDocumentPayload, 'document' | 'documentName'>): Promise<void> {
    this.loading.set(document, this.metrics.documentLoad.startTimer());
    const name = parseDocumentName(documentName);
    const version = await this.store.load(name, document);
    this.relayed?.follower.loaded(name, Y.encodeStateAsUpdate(document), version);
  }

  async afterLoadDocument({ document }: afterLoadDocumentPayload): Promise<void> {
    const name = parseDocumentName(document.name);
    let tracker: DocumentTracker | null = null;
    try {
      tracker = new DocumentTracker(kindOf(name.kind), document, name.id, (violation) => this.violated(name, violation));
    } catch (error) {
      // The document still loads and its updates are logged; its tables are rebuilt at the next load.
      this.log.error({ err: error, code: 'tracking-failed', document: name.name }, 'could not read the document through its layout');
    }
    const copy = tracker && this.copyOf(name, document, tracker);
    document.on('afterTransaction', (transaction: Y.Transaction) => tracker && this.track(name, tracker, copy, transaction));
    document.on('update', (update: Uint8Array, origin: unknown, _doc: Y.Doc, transaction: Y.Transaction) => {
      this.logUpdate(name, update, origin, transaction);
      this.parked.settleHeld(document, authorOf(origin) !== null);
    });
    this.loading.get(document)?.();
    this.loading.delete(document);
  }

  /**
   * Belt and braces to the store hook: a document with uncommitted updates
   * stays loaded, and is unloaded once they are committed (Hocuspocus itself
   * would not try again).
   */
  async beforeUnloadDocument({ instance, document, documentName }: beforeUnloadDocumentPayload): Promise<void> {
    const follower = this.relayed?.follower;
    if (!this.updateLog.hasPending(documentName) && !follower?.hasUnlogged(documentName)) return;
    void Promise.all([this.updateLog.whenDrained(documentName), follower?.logged(documentName)]).then(() => instance.unloadDocument(document));
    throw new HookRefusal(`${documentName} still has updates that are not logged`);
  }

  async afterUnloadDocument({ documentName }: afterUnloadDocumentPayload): Promise<void> {
    this.parked.forget(documentName);
    this.store.unloaded(parseDocumentName(documentName));
    this.pipeline.forget([documentName]);
    this.relayed?.follower.forget(documentName);
    this.relayed?.rows.forget(documentName);
  }

  /** Settles once everything of the document queued so far is committed, including what other instances relayed to it. */
  private committedSoFar(document: string): Promise<unknown> {
    return this.relayed ? Promise.all([this.updateLog.committedSoFar(document), this.relayed.follower.logged(document)]) : this.updateLog.committedSoFar(document);
  }

  /** A refusal by a bound on parked writes, counted and logged. */
  private pendingRefusal(connection: Connection, limit: ParkingLimit): ConcordError {
    const what = limit === 'MAX_PENDING_AGE_MS' ? 'they waited too long' : 'the document already holds as much of such changes as it may';
    const error = new ConcordError(
      'rate-limited',
      `changes from this connection depend on changes the server never received and ${what} (${limit}); they were not applied: reload the document`,
    );
    this.metrics.limitsReached.inc({ limit });
    this.metrics.refusals.inc({ code: error.code });
    const { principal } = connection.context as ConnectionContext;
    this.log.warn({ code: error.code, limit, document: connection.document.name, user: principal.userId }, error.message);
    return error;
  }

  /**
   * The document's pending structs were dropped: the connections still open
   * whose writes were among them are closed, once the ack gate has answered
   * those writes "not applied" (on the promises' own turn).
   */
  private parkedDropped(document: Document, connections: Connection[], limit: ParkingLimit): void {
    setImmediate(() => {
      for (const connection of connections) {
        if (document.hasConnection(connection)) connection.close(this.pendingRefusal(connection, limit).closeEvent);
      }
    });
  }

  /**
   * Every transaction moves the tracker on; those that will be logged keep
   * what they changed. With several instances, content that came from another
   * one (relayed, or read from the log) gets its rows written here too.
   */
  private track(document: DocumentName, tracker: DocumentTracker, copy: DocumentCopy | null, transaction: Y.Transaction): void {
    try {
      if (authorOf(transaction.origin)) this.changesOf.set(transaction, { ...tracker.observe(transaction), rowsNow: (ids) => tracker.rows(ids) });
      else {
        const { rows, fieldChanges } = tracker.follow(transaction);
        if (copy && (fieldChanges.length > 0 || rows.members.size > 0)) this.relayed?.rows.touched(document, rows.members.keys(), copy);
      }
    } catch (error) {
      // Never let a projection bug stop an update from being applied and logged.
      this.metrics.persistenceErrors.inc({ operation: 'track' });
      this.log.error({ err: error, code: 'tracking-failed', document: document.name }, 'could not read what an update changed; it is logged without audit rows');
    }
  }

  /** With several instances: the document as the tables are written from it (see RelayedRows). */
  private copyOf(name: DocumentName, document: Y.Doc, tracker: DocumentTracker): DocumentCopy | null {
    const follower = this.relayed?.follower;
    if (!follower) return null;
    return {
      rows: (ids) => tracker.rows(ids),
      upToLog: () => follower.bringUpToLog(name.name, document),
      holdsUnlogged: () => this.updateLog.hasPending(name.name) || follower.hasUnlogged(name.name),
    };
  }

  private violated(document: DocumentName, violation: LayoutViolation): void {
    this.metrics.layoutViolations.inc({ kind: document.kind, field: violation.field });
    // A nested Yjs type or binary content has no useful JSON: name its type.
    const { value: raw } = violation;
    const named = raw !== null && typeof raw === 'object' && !Array.isArray(raw) && Object.getPrototypeOf(raw) !== Object.prototype;
    const value = named ? `<${raw.constructor.name}>` : JSON.stringify(toPgJson(raw)).slice(0, 200);
    this.log.warn({ code: 'layout-violation', document: document.name, entity: violation.entity, entityId: violation.entityId, field: violation.field, value }, 'a value breaks the layout; it reads as null');
  }

  // Runs inside Y.applyUpdate, where y-protocols swallows exceptions: it must not throw.
  private logUpdate(document: DocumentName, update: Uint8Array, origin: unknown, transaction: Y.Transaction): void {
    const author = authorOf(origin);
    if (isRelayed(origin)) this.relayed?.follower.relayed(document.name, update);
    if (!author || !isTransactionOrigin(origin)) return; // the second test only narrows the type
    try {
      this.metrics.updatesReceived.inc();
      const changes = this.changesOf.get(transaction);
      const committed = this.updateLog.append({ document, update, ...author, receivedAt: new Date(), changes });
      committed.catch(() => {}); // the ack gate or the edit's caller reacts to a failure
      if (origin.source === 'local' && isServerEdit(origin.context)) {
        origin.context.committed = committed;
        return;
      }
      if (origin.source !== 'connection') return;
      const socket = origin.connection.webSocket;
      if (socket instanceof AckGatedSocket) socket.holdUntil(origin.connection.messageAddress, committed);
    } catch (error) {
      this.log.error({ err: error, code: 'update-not-logged', document: document.name }, 'an update could not be queued for the log');
      if (origin.source === 'connection') origin.connection.close(new ConcordError('storage-unavailable', 'the update could not be queued for Postgres').closeEvent);
    }
  }
}
