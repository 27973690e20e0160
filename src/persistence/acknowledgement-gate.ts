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
import * as Y from 'yjs';
import { isServerEdit, transactionCommit, writerOf, type ConnectionContext } from '../context.ts';
import { refusalMessage } from '../auth/write-refusals.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { readFrame } from '../protocol.ts';
import type { LogFollower } from './log-follower.ts';
import type { RuleBook } from '../rules/rulebook.ts';
import { ParkedWrites, parkedBytes, type DropReason, type ParkedBy, type ParkingLimit, type ParkingLimits } from './parked-writes.ts';
import type { UpdateLog } from './update-log.ts';

export interface AcknowledgementGateOptions {
  updateLog: UpdateLog;
  /** With several instances: a document also holds what other instances relayed to it, committed once they log it. */
  follower?: Pick<LogFollower, 'logged'>;
  /** MAX_BACKLOG_BYTES: what the update log may hold uncommitted before writes bringing anything new are refused. */
  maxBacklogBytes: number;
  /** What a document may hold parked. */
  parking: ParkingLimits;
  /** Judges parked content once a change made it releasable. */
  rules: Pick<RuleBook, 'judgeFor'>;
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

/** Parked content the rules could not judge is refused, never released. */
function notJudged(error: unknown): ConcordError {
  return error instanceof ConcordError ? error : new ConcordError('internal', 'the parked changes could not be judged', { cause: error });
}

/** The judge's refusal, or one of its own should the judge fail. */
function judged(judge: () => ConcordError | null): ConcordError | null {
  try {
    return judge();
  } catch (error) {
    return notJudged(error);
  }
}

/** An update that brings nothing: applied, it makes Yjs retry what it holds pending. */
const NO_CHANGE = Y.encodeStateAsUpdate(new Y.Doc());

/**
 * The origin of the transaction that releases `parkedBy`'s held content: a
 * connection's is logged as its user's (ParkedReleaseContext); content a relay
 * or the log parked goes in as relayed content does (followed until logged,
 * with several instances; not logged here).
 */
function releaseOrigin(parkedBy: ParkedBy) {
  return parkedBy ? ({ source: 'local', skipStoreHooks: true, context: { releaseOf: parkedBy } } as const) : ({ source: 'redis' } as const);
}

/**
 * Answers every write only once it is committed: a client's acknowledgement is
 * held by its socket's gate (AckGatedSocket, found in the connection's
 * context) until everything of the document queued so far, the write's own
 * update included, is committed; a server-side edit's caller gets the commit
 * in its context. Bounds what waits meanwhile: the update log's backlog while
 * Postgres is away, and the writes Yjs parks for missing dependencies
 * (ParkedWrites), kept out of the document until a judged release.
 *
 * Registered after every extension that may refuse a write in
 * beforeHandleMessage (a refused write is not waited for), after
 * Persistence (its `update` listener reads the commit Persistence's listener
 * put on the transaction), and after ClusterFollower (whose `update` listener
 * follows a relayed update: parked writes answered in the same transaction
 * wait for it to be logged).
 */
export class AcknowledgementGate implements Extension {
  extensionName = 'concord-acknowledgement-gate';

  private readonly updateLog: UpdateLog;
  private readonly follower?: Pick<LogFollower, 'logged'>;
  private readonly maxBacklogBytes: number;
  private readonly parked: ParkedWrites;
  /** Documents whose held content is being released (release). */
  private readonly releasing = new WeakSet<Document>();
  private readonly rules: Pick<RuleBook, 'judgeFor'>;
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(options: AcknowledgementGateOptions) {
    this.updateLog = options.updateLog;
    this.follower = options.follower;
    this.maxBacklogBytes = options.maxBacklogBytes;
    this.rules = options.rules;
    this.log = options.log;
    this.metrics = options.metrics;
    this.parked = new ParkedWrites(options.parking, {
      userOf: (connection) => (connection.context as ConnectionContext).principal.userId,
      committedSoFar: (document) => this.committedSoFar(document),
      dropped: (document, connection, reason) => this.parkedDropped(document, connection, reason),
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
    // Refused when this connection's user would hold the most of the bound it passes; closed, its parked writes go with it (connected).
    const exceeded = applies && !reach.appliesTo(document) ? this.parked.makeRoom(document, connection, bytes) : null;
    if (exceeded) return refuseAndClose(connection, this.pendingRefusal(connection, exceeded));
    const { acknowledgements, principal } = connection.context as ConnectionContext;
    acknowledgements.expectWrite(connection.messageAddress, {
      // Even a write that adds nothing new (a resend after a reconnect, say) is
      // acknowledged only once what the document holds is committed, including
      // what other instances relayed to it.
      earlier: this.committedSoFar(document.name),
      parked: () =>
        applies && !reach.heldBy(document) ? this.parked.park(document, connection, { reach, bytes }) : undefined,
    });
  }

  async connected({ connection, context }: connectedPayload<ConnectionContext>): Promise<void> {
    connection.onClose((document) => {
      context.acknowledgements.forget(connection.messageAddress);
      this.parked.connectionClosed(document, connection);
    });
  }

  async afterLoadDocument({ document }: afterLoadDocumentPayload): Promise<void> {
    // What Yjs parks is kept out of the document (ParkedWrites.hold): a sync answer would carry it to other
    // instances and clients, and any later update would release it unjudged. Releases are judged (release).
    document.on('afterTransaction', (transaction: Y.Transaction) => {
      if (this.parked.hold(document, writerOf(transaction.origin))) void this.release(document);
    });
    document.on('update', (_update: Uint8Array, origin: unknown, _doc: Y.Doc, transaction: Y.Transaction) => {
      this.holdAnswer(origin, transaction);
      this.parked.settleHeld(document);
    });
    // What the stored content left parked (nothing, unless the log holds a gap) is kept out too.
    if (this.parked.hold(document, null)) void this.release(document);
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

  /**
   * Releases held content that a change made releasable (it brought what the
   * content waits for), one set at a time, until none is left releasable (a
   * release may make another set releasable; a refusal releases nothing),
   * answering the parked writes whose content is then in (a release that
   * brings nothing new, its content already in, fires no update). One run
   * per document at a time: a change during a run is seen by its next check.
   */
  private async release(document: Document): Promise<void> {
    if (this.releasing.has(document)) return;
    this.releasing.add(document);
    try {
      for (let parkedBy = this.parked.nextRelease(document); parkedBy !== undefined; parkedBy = this.parked.nextRelease(document)) {
        await this.releaseSet(document, parkedBy);
        this.parked.settleHeld(document);
      }
    } catch (error) {
      // Yjs, or a listener of the release's update, failed: what is still held is tried again on the next change.
      this.log.error({ err: error, code: 'internal', document: document.name }, 'parked content could not be released');
    } finally {
      this.releasing.delete(document);
    }
  }

  /**
   * A connection's held content is judged as its user in the document's turn:
   * allowed, it is applied and logged as theirs; refused, that connection's
   * parked writes are dropped and it is refused with the rule's code. Content
   * a relay or the log parked was judged where it was written and goes in as
   * it is.
   */
  private async releaseSet(document: Document, parkedBy: ParkedBy): Promise<void> {
    if (parkedBy === null) {
      // Out of the transaction that made it releasable.
      await Promise.resolve();
      if (this.parked.restoreForRelease(document, null)) Y.applyUpdate(document, NO_CHANGE, releaseOrigin(null));
      return;
    }
    const { principal, document: name } = parkedBy.context as ConnectionContext;
    const turn = await this.rules.judgeFor(principal, name).catch((error: unknown) => notJudged(error));
    if (turn instanceof ConcordError) return this.parked.dropParkedBy(document, parkedBy, turn);
    try {
      if (!this.parked.restoreForRelease(document, parkedBy)) return;
      const refusal = judged(() => turn.judge(document, NO_CHANGE));
      if (refusal) this.parked.dropParkedBy(document, parkedBy, refusal);
      else Y.applyUpdate(document, NO_CHANGE, releaseOrigin(parkedBy));
    } finally {
      turn.endTurn();
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

  /** The rules refused what releasing parked writes would change: counted and logged, as a refused write is. */
  private releaseRefusal(connection: Connection, refusal: ConcordError): ConcordError {
    this.metrics.refusals.inc({ code: refusal.code });
    const { principal } = connection.context as ConnectionContext;
    this.log.warn({ code: refusal.code, document: connection.document.name, user: principal.userId }, `parked changes were dropped: ${refusal.message}`);
    return refusal;
  }

  /**
   * A connection's parked writes were dropped: counted and logged, and the
   * connection, if still open, closed (told the rule's refusal first, when a
   * rule refused them) once the socket's gate has answered those writes "not
   * applied" (on the promises' own turn). Writes it has queued meanwhile are
   * handled as ever: judged by the rules, and what they park goes at the close.
   */
  private parkedDropped(document: Document, connection: Connection, reason: DropReason): void {
    const refusal = typeof reason === 'string' ? this.pendingRefusal(connection, reason) : this.releaseRefusal(connection, reason);
    setImmediate(() => {
      if (!document.hasConnection(connection)) return;
      // A rule's refusal names the fields, as a refused write's does.
      if (typeof reason !== 'string') connection.sendStateless(refusalMessage(refusal));
      connection.close(refusal.closeEvent);
    });
  }
}
