import { isTransactionOrigin, type Connection } from '@hocuspocus/server';
import type * as Y from 'yjs';
import type { UpdateChanges } from './commit/writer.ts';
import type { Principal } from './auth/tokens.ts';
import type { DocumentName } from './documents/name.ts';
import type { Acknowledgements } from './persistence/acknowledgements.ts';

/**
 * What the socket session hands Hocuspocus with its socket, as the default
 * context: Hocuspocus copies it into the context of every document the socket
 * opens, so each extension finds the socket's parts it needs there.
 */
export interface SocketContext {
  /** The socket's gate on acknowledgements (AckGatedSocket). */
  acknowledgements: Acknowledgements;
  /**
   * Sends the client a document's stored content while the server loads it,
   * to an address of the socket that is authenticated for the document,
   * waits for its connection and holds nothing of it (SocketSession).
   * Resolves once the network has taken it, or after a short wait.
   */
  sendStoredContent(documentName: string, updates: Uint8Array[]): Promise<void>;
}

/** What Authorization adds to a document connection's context once the token is checked. */
export interface AuthorizedContext {
  principal: Principal;
  document: DocumentName;
}

/** What Concord keeps on every authenticated document connection. */
export type ConnectionContext = SocketContext & AuthorizedContext;

/**
 * The context of a server-side edit (an API PATCH or a restore), made through
 * a Hocuspocus direct connection: the caller is the author, and the edit's
 * commit is handed back here (by the AcknowledgementGate) so the caller can
 * answer with the new version.
 */
export interface ServerEditContext {
  principal: Principal;
  origin: 'api' | 'restore';
  /** For a restore: the version it makes the document equal to. */
  restoredFrom?: number;
  committed?: Promise<number>;
}

export function isServerEdit(context: unknown): context is ServerEditContext {
  const origin = (context as Partial<ServerEditContext> | undefined)?.origin;
  return origin === 'api' || origin === 'restore';
}

/**
 * The context of the transaction that releases one connection's parked
 * writes once the rules allowed it (AcknowledgementGate): logged as that
 * connection's user, as the writes would have been had nothing been missing.
 */
export interface ParkedReleaseContext {
  releaseOf: Connection;
}

export function isParkedRelease(context: unknown): context is ParkedReleaseContext {
  return (context as Partial<ParkedReleaseContext> | undefined)?.releaseOf !== undefined;
}

/** The connection whose write the transaction applies, or whose parked writes it releases; null for any other. */
export function writerOf(transactionOrigin: unknown): Connection | null {
  if (!isTransactionOrigin(transactionOrigin)) return null;
  if (transactionOrigin.source === 'connection') return transactionOrigin.connection;
  return transactionOrigin.source === 'local' && isParkedRelease(transactionOrigin.context) ? transactionOrigin.context.releaseOf : null;
}

/** Who an update is logged for: the connection's user, or the caller of a server-side edit. */
export interface Author {
  userId: string;
  origin: 'client' | 'api' | 'restore';
  restoredFrom?: number;
}

/** Client updates (also released once parked) and server-side edits have an author; loads and relayed updates do not (they are not logged). */
export function authorOf(transactionOrigin: unknown): Author | null {
  if (!isTransactionOrigin(transactionOrigin)) return null;
  const writer = writerOf(transactionOrigin);
  if (writer) return { userId: (writer.context as ConnectionContext).principal.userId, origin: 'client' };
  if (transactionOrigin.source === 'local' && isServerEdit(transactionOrigin.context)) {
    const { principal, origin, restoredFrom } = transactionOrigin.context;
    return { userId: principal.userId, origin, ...(restoredFrom !== undefined && { restoredFrom }) };
  }
  return null;
}

/**
 * One kind of value a Yjs transaction carries from one extension's listener
 * to another's, on `transaction.meta` (the Map Yjs gives every transaction for
 * this). Yjs emits `afterTransaction` to every listener before `update`, so a
 * value set in `afterTransaction` is there for every `update` listener; the
 * listeners of one event run in the order they were registered, which is the
 * order of the extensions (each registers its own in afterLoadDocument).
 */
export class TransactionValue<T> {
  private readonly key: symbol;

  constructor(name: string) {
    this.key = Symbol(name);
  }

  get(transaction: Y.Transaction): T | undefined {
    return transaction.meta.get(this.key) as T | undefined;
  }

  set(transaction: Y.Transaction, value: T): void {
    transaction.meta.set(this.key, value);
  }
}

/**
 * What the transaction changed, read by Projection in `afterTransaction`
 * (while its deleted content is still there); absent when the document has no
 * tracker or the reading failed.
 */
export const transactionChanges = new TransactionValue<UpdateChanges>('concord:changes');

/**
 * The commit of the transaction's update, set by Persistence's `update`
 * listener when it queues the update for the log (client updates and
 * server-side edits only); read by the AcknowledgementGate's, registered after it.
 */
export const transactionCommit = new TransactionValue<Promise<number>>('concord:commit');
