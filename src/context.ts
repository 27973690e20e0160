import { isTransactionOrigin } from '@hocuspocus/server';
import type { Principal } from './auth/tokens.ts';
import type { DocumentName } from './documents/name.ts';

/** What Concord keeps on every authenticated document connection. */
export interface ConnectionContext {
  principal: Principal;
  document: DocumentName;
}

/**
 * The context of a server-side edit (an API PATCH or a restore), made through
 * a Hocuspocus direct connection: the caller is the author, and the edit's
 * commit is handed back so the caller can answer with the new version.
 */
export interface ServerEditContext {
  principal: Principal;
  origin: 'api' | 'restore';
  committed?: Promise<number>;
}

export function isServerEdit(context: unknown): context is ServerEditContext {
  const origin = (context as Partial<ServerEditContext> | undefined)?.origin;
  return origin === 'api' || origin === 'restore';
}

/** Who an update is logged for: the connection's user, or the caller of a server-side edit. */
export interface Author {
  userId: string;
  origin: 'client' | 'api' | 'restore';
}

/** Client updates and server-side edits have an author; loads and relayed updates do not (they are not logged). */
export function authorOf(transactionOrigin: unknown): Author | null {
  if (!isTransactionOrigin(transactionOrigin)) return null;
  if (transactionOrigin.source === 'connection') {
    return { userId: (transactionOrigin.connection.context as ConnectionContext).principal.userId, origin: 'client' };
  }
  if (transactionOrigin.source === 'local' && isServerEdit(transactionOrigin.context)) {
    return { userId: transactionOrigin.context.principal.userId, origin: transactionOrigin.context.origin };
  }
  return null;
}
