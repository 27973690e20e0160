import type { Connection } from '@hocuspocus/server';
import type { ConnectionContext } from '../context.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { commentWriters } from './access.ts';

/** A refusal the client receives as a stateless message: `{"type":"concord:refused",...}`. */
export function refusalMessage(error: ConcordError): string {
  return JSON.stringify({ type: 'concord:refused', ...error.toJSON() });
}

/**
 * Refuses one WebSocket write whole, before it is applied, for every
 * extension that judges writes (Authorization, Rules): Hocuspocus drops a
 * read-only connection's update and answers it "not applied", so the
 * connection is read-only for the one message refused, and its own state
 * again after it (`release`, in afterHandleMessage). The client is told why
 * in a stateless message.
 */
export class WriteRefusals {
  private readonly heldBack = new WeakSet<Connection>();
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(log: Logger, metrics: Metrics) {
    this.log = log;
    this.metrics = metrics;
  }

  /** Refuses the write being handled. */
  refuse(connection: Connection, error: ConcordError): void {
    connection.readOnly = true;
    this.heldBack.add(connection);
    this.tell(connection, error);
  }

  /** Tells the connection why something it sent was refused (and logs and counts it). */
  tell(connection: Connection, error: ConcordError): void {
    this.record(error, connection.document.name);
    connection.sendStateless(refusalMessage(error));
  }

  /** Logs and counts a refusal (any error refuses as `internal` unless it is a ConcordError). */
  record(error: unknown, documentName: string): void {
    const code = error instanceof ConcordError ? error.code : 'internal';
    this.metrics.refusals.inc({ code });
    this.log.info({ code, document: documentName.slice(0, 200), reason: (error as Error).message }, 'refused');
  }

  /** After the refused message: the connection's role decides again. */
  release(connection: Connection): void {
    if (!this.heldBack.delete(connection)) return;
    connection.readOnly = !commentWriters.has((connection.context as ConnectionContext).principal.role);
  }
}
