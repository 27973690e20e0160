import {
  isTransactionOrigin,
  type afterLoadDocumentPayload,
  type afterUnloadDocumentPayload,
  type beforeHandleMessagePayload,
  type Connection,
  type connectedPayload,
  type Document,
  type Extension,
} from '@hocuspocus/server';
import type * as Y from 'yjs';
import { authorOf, isServerEdit, transactionCommit, type ConnectionContext } from '../context.ts';
import { parseDocumentName } from '../documents/kinds.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { readFrame } from '../protocol.ts';
import type { LogFollower } from './log-follower.ts';
import { ParkedWrites, parkedBytes, type ParkingLimit, type ParkingLimits } from './parked-writes.ts';
import type { UpdateLog } from './update-log.ts';

export interface AcknowledgementGateOptions {
  updateLog: UpdateLog;
  /** With several instances: a document also holds what other instances relayed to it, committed once they log it. */
  follower?: Pick<LogFollower, 'logged'>;
  /** MAX_BACKLOG_BYTES: what the update log may hold uncommitted before writes bringing anything new are refused. */
  maxBacklogBytes: number;
  /** What a document may hold parked. */
  parking: ParkingLimits;
  log: Logger;
  metrics: Metrics;
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

/**
 * Answers every write only once it is committed: a client's acknowledgement is
 * held by its socket's gate (AckGatedSocket, found in the connection's
 * context) until everything of the document queued so far, the write's own
 * update included, is committed; a server-side edit's caller gets the commit
 * in its context. Bounds what waits meanwhile: the update log's backlog while
 * Postgres is away, and the writes Yjs parks for missing dependencies
 * (ParkedWrites).
 *
 * Registered after every extension that may refuse a write in
 * beforeHandleMessage (a refused write is not waited for), and after
 * Persistence: its `update` listener reads the commit Persistence's listener
 * put on the transaction.
 */
export class AcknowledgementGate implements Extension {
  extensionName = 'concord-acknowledgement-gate';

  private readonly updateLog: UpdateLog;
  private readonly follower?: Pick<LogFollower, 'logged'>;
  private readonly maxBacklogBytes: number;
  private readonly parked: ParkedWrites;
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(options: AcknowledgementGateOptions) {
    this.updateLog = options.updateLog;
    this.follower = options.follower;
    this.maxBacklogBytes = options.maxBacklogBytes;
    this.log = options.log;
    this.metrics = options.metrics;
    this.parked = new ParkedWrites(options.parking, {
      committedSoFar: (document) => this.committedSoFar(document),
      logAlone: (document, write) =>
        this.updateLog.append({ document: parseDocumentName(document.name), update: write.update, userId: write.userId, origin: 'client', receivedAt: new Date() }),
      dropped: (document, connections, limit) => this.parkedDropped(document, connections, limit),
    });
  }

  /**
   * Refuses writes beyond the backlog and parking bounds before they are
   * applied, and tells the socket's gate what the write's acknowledgement
   * waits for.
   */
  async beforeHandleMessage({ connection, document, update }: beforeHandleMessagePayload): Promise<void> {
    const { write } = readFrame(update);
    if (!write) return;
    const { reach } = write;
    // Hocuspocus answers a read-only connection's write itself, without applying it.
    const applies = !connection.readOnly;
    // While Postgres is away the backlog lives in memory: past the limit, writes
    // that bring anything new are refused (the client keeps them as unsynced)
    // instead of growing it.
    if (applies && this.updateLog.backlogBytes > this.maxBacklogBytes && !reach.heldBy(document)) {
      this.metrics.refusals.inc({ code: 'storage-unavailable' });
      return refuseAndClose(connection, new ConcordError('storage-unavailable', 'Postgres is not keeping up; the change was not applied, retry shortly'));
    }
    const bytes = parkedBytes(write.update, reach);
    const exceeded = applies && !reach.appliesTo(document) ? this.parked.exceeded(document, bytes) : null;
    if (exceeded) {
      refuseAndClose(connection, this.pendingRefusal(connection, exceeded));
      // What is parked already costs every later write of the document: it goes too.
      this.parked.drop(document, exceeded);
      return;
    }
    const { acknowledgements, principal } = connection.context as ConnectionContext;
    acknowledgements.expectWrite(connection.messageAddress, {
      // Even a write that adds nothing new (a resend after a reconnect, say) is
      // acknowledged only once what the document holds is committed, including
      // what other instances relayed to it.
      earlier: this.committedSoFar(document.name),
      parked: () =>
        applies && !reach.heldBy(document) ? this.parked.park(document, connection, { update: write.update, userId: principal.userId, reach, bytes }) : undefined,
    });
  }

  async connected({ connection, context }: connectedPayload<ConnectionContext>): Promise<void> {
    connection.onClose(() => context.acknowledgements.forget(connection.messageAddress));
  }

  async afterLoadDocument({ document }: afterLoadDocumentPayload): Promise<void> {
    document.on('update', (_update: Uint8Array, origin: unknown, _doc: Y.Doc, transaction: Y.Transaction) => {
      this.holdAnswer(origin, transaction);
      this.parked.settleHeld(document, authorOf(origin) !== null);
    });
  }

  async afterUnloadDocument({ documentName }: afterUnloadDocumentPayload): Promise<void> {
    this.parked.forget(documentName);
  }

  /** The answer to the write the transaction applied waits for its commit (set by Persistence, see transactionCommit). */
  private holdAnswer(origin: unknown, transaction: Y.Transaction): void {
    const committed = transactionCommit.get(transaction);
    if (!committed || !isTransactionOrigin(origin)) return;
    if (origin.source === 'connection') {
      const { acknowledgements } = origin.connection.context as ConnectionContext;
      acknowledgements.holdUntil(origin.connection.messageAddress, committed);
    } else if (origin.source === 'local' && isServerEdit(origin.context)) {
      origin.context.committed = committed;
    }
  }

  /** Settles once everything of the document queued so far is committed, including what other instances relayed to it. */
  private committedSoFar(document: string): Promise<unknown> {
    return this.follower ? Promise.all([this.updateLog.committedSoFar(document), this.follower.logged(document)]) : this.updateLog.committedSoFar(document);
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
   * whose writes were among them are closed, once the socket's gate has
   * answered those writes "not applied" (on the promises' own turn).
   */
  private parkedDropped(document: Document, connections: Connection[], limit: ParkingLimit): void {
    setImmediate(() => {
      for (const connection of connections) {
        if (document.hasConnection(connection)) connection.close(this.pendingRefusal(connection, limit).closeEvent);
      }
    });
  }
}
