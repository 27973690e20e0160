import type {
  afterHandleMessagePayload,
  afterLoadDocumentPayload,
  afterUnloadDocumentPayload,
  beforeHandleMessagePayload,
  connectedPayload,
  Connection,
  Extension,
  onAuthenticatePayload,
  onTokenSyncPayload,
} from '@hocuspocus/server';
import * as Y from 'yjs';
import type { AuthorizedContext, ConnectionContext } from '../context.ts';
import { parseDocumentName } from '../documents/kinds.ts';
import type { DocumentName } from '../documents/name.ts';
import { describeWrites } from '../documents/update-scope.ts';
import { ConcordError, hookRefusal } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import { readFrame, type UpdateReach } from '../protocol.ts';
import { checkDocumentAccess, commenterMay, commenterMayApply, COMMENTS, commentWriters, contentWriters } from './access.ts';
import { wroteOnlyUnder, type ClientOwners } from './client-owners.ts';
import type { WriteRefusals } from './write-refusals.ts';
import type { Principal, TokenVerifier } from './tokens.ts';

// setTimeout's longest delay; a later moment is re-checked when it fires.
const MAX_TIMER_MS = 2 ** 31 - 1;
// How long before expiry the server asks the provider for a fresh token (at
// most half the token's remaining lifetime).
const REFRESH_LEAD_MS = 30_000;

/**
 * Authenticates and authorizes every document of every socket on its own:
 * the token must verify, its tenant must be the document's, its `docs` list
 * (if any) must name the document, and only editors and admins may change
 * content; commenters may add comments, reply and resolve, and nothing else.
 * Whoever writes, new content goes only under a Yjs clientID of their own
 * (see ClientOwners). Shortly before a token expires the server asks the provider for a
 * fresh one (the provider calls its `token` function); without one, the
 * connection to that document ends at expiry.
 */
export class Authorization implements Extension {
  extensionName = 'concord-authorization';

  private readonly verify: TokenVerifier;
  private readonly metrics: Metrics;
  private readonly expiryTimers = new WeakMap<Connection, NodeJS.Timeout>();
  private readonly refusals: WriteRefusals;
  private readonly clientOwners: ClientOwners;
  private readonly maxNewClientsPerUpdate: number;

  constructor(verify: TokenVerifier, clientOwners: ClientOwners, refusals: WriteRefusals, metrics: Metrics, maxNewClientsPerUpdate: number) {
    this.verify = verify;
    this.clientOwners = clientOwners;
    this.refusals = refusals;
    this.maxNewClientsPerUpdate = maxNewClientsPerUpdate;
    this.metrics = metrics;
  }

  async onAuthenticate({ token, documentName, connectionConfig }: onAuthenticatePayload): Promise<AuthorizedContext> {
    try {
      const document = parseDocumentName(documentName);
      const principal = await this.authorize(token, document);
      connectionConfig.readOnly = !commentWriters.has(principal.role);
      return { principal, document };
    } catch (error) {
      this.refusals.record(error, documentName);
      throw hookRefusal(error);
    }
  }

  /** Learns who writes under which clientID (see ClientOwners). */
  async afterLoadDocument({ documentName }: afterLoadDocumentPayload): Promise<void> {
    await this.clientOwners.load(parseDocumentName(documentName));
  }

  async afterUnloadDocument({ documentName }: afterUnloadDocumentPayload): Promise<void> {
    this.clientOwners.forget(documentName);
  }

  async connected({ connection }: connectedPayload<ConnectionContext>): Promise<void> {
    const { principal } = this.authorized(connection);
    connection.onClose(() => clearTimeout(this.expiryTimers.get(connection)));
    this.watchExpiry(connection, principal.expiresAt);
  }

  /** A fresh token for an open document: same user, checked like the first; its role and expiry apply from now. */
  async onTokenSync({ token, connection, documentName }: onTokenSyncPayload): Promise<void> {
    const context = connection.context as ConnectionContext;
    try {
      const principal = await this.authorize(token, context.document);
      if (principal.userId !== context.principal.userId) {
        throw new ConcordError('not-allowed', 'a refreshed token must be for the same user');
      }
      const expiresLater = principal.expiresAt > context.principal.expiresAt;
      context.principal = { ...principal, expiresAt: Math.max(principal.expiresAt, context.principal.expiresAt) };
      connection.readOnly = !commentWriters.has(principal.role);
      // Only a later expiry moves the timers (asking again for the same one would loop).
      if (expiresLater) this.watchExpiry(connection, principal.expiresAt);
    } catch (error) {
      this.refusals.record(error, documentName);
      // Closed here rather than thrown: Hocuspocus would print the error with console.error, then close the same way.
      const refusal = error instanceof ConcordError ? error : new ConcordError('internal', 'the fresh token could not be checked');
      connection.close(refusal.closeEvent);
    }
  }

  /**
   * Refuses a write the role may not make, or one bringing content under a
   * clientID another user writes under, whole (see WriteRefusals).
   */
  async beforeHandleMessage({ connection, update, document }: beforeHandleMessagePayload): Promise<void> {
    const { principal, document: name } = this.authorized(connection);
    const { write } = readFrame(update);
    if (!write) return;
    if (connection.readOnly) {
      if (Y.snapshotContainsUpdate(Y.snapshot(document), write.update)) return;
      this.refusals.tell(connection, new ConcordError('read-only', `role "${principal.role}" may not change this document; the change was not applied`));
      return;
    }
    const refusal = this.roleRefusal(principal, name, document, write.update) ?? (await this.clientRefusal(principal, name, document, write.reach));
    if (refusal) this.refusals.refuse(connection, refusal);
  }

  /** A commenter's write that does more than comment (see commenterMayApply). */
  private roleRefusal(principal: Principal, name: DocumentName, document: Y.Doc, update: Uint8Array): ConcordError | null {
    if (contentWriters.has(principal.role)) return null;
    const writes = describeWrites(document, update, (write) => !commenterMay(write, principal.userId));
    // An unowned clientID that already wrote (before ownership was recorded) is a commenter's to claim only if all it wrote is comments.
    const mayUseClient = (client: number) => this.clientOwners.ownerOf(name.name, client) !== undefined || wroteOnlyUnder(document, client, COMMENTS);
    if (writes && commenterMayApply(writes, principal.userId, mayUseClient)) return null;
    return new ConcordError('comments-only', `role "${principal.role}" may only add comments (as themselves), reply and resolve; the whole change was not applied`);
  }

  /** New content under a clientID that is not the user's own (claimed now if nobody's). */
  private async clientRefusal(principal: Principal, name: DocumentName, document: Y.Doc, reach: UpdateReach): Promise<ConcordError | null> {
    const clients = reach.newContentClients(document);
    if (clients.length === 0) return null;
    // Each new clientID is a row in document_clients for good: an update may not bring many at once.
    const unclaimed = clients.filter((client) => this.clientOwners.ownerOf(name.name, client) === undefined).length;
    if (unclaimed > this.maxNewClientsPerUpdate) {
      this.metrics.limitsReached.inc({ limit: 'MAX_NEW_CLIENTS_PER_UPDATE' });
      return new ConcordError(
        'rate-limited',
        `the change writes under ${unclaimed} Yjs clientIDs new to this document, more than MAX_NEW_CLIENTS_PER_UPDATE (${this.maxNewClientsPerUpdate}); it was not applied`,
      );
    }
    const owners = await this.clientOwners.claim(name, clients, { userId: principal.userId, origin: 'client' });
    const foreign = clients.filter((client) => {
      const owner = owners.get(client);
      return owner?.userId !== principal.userId || owner.origin !== 'client';
    });
    if (foreign.length === 0) return null;
    return new ConcordError(
      'foreign-client',
      `the change writes under Yjs clientID ${foreign.join(', ')}, which another user (or the server) writes under; it was not applied: load the document again into a new Y.Doc`,
    );
  }

  async afterHandleMessage({ connection }: afterHandleMessagePayload): Promise<void> {
    this.refusals.release(connection);
  }

  /**
   * The connection's context as onAuthenticate made it. Hocuspocus 4.7 can set
   * a connection up with a fresh context, not the one its token gave, when its
   * socket closes while documents authenticate (SocketSession no longer lets
   * that happen): such a connection is closed and the hook refused, before any
   * extension after this one reads a user that is not there.
   */
  private authorized(connection: Connection): ConnectionContext {
    const context = connection.context as Partial<ConnectionContext>;
    if (context.principal && context.document) return context as ConnectionContext;
    const error = new ConcordError('internal', 'the connection was set up without its authentication; connect again');
    this.refusals.record(error, connection.document.name);
    connection.close(error.closeEvent);
    throw hookRefusal(error);
  }

  private async authorize(token: string, document: DocumentName): Promise<Principal> {
    const principal = await this.verify(token);
    checkDocumentAccess(principal, document);
    return principal;
  }

  /** Asks for a fresh token shortly before `expiresAt`, and closes the document at `expiresAt`. */
  private watchExpiry(connection: Connection, expiresAt: number): void {
    const askAt = expiresAt - Math.min(REFRESH_LEAD_MS, (expiresAt - Date.now()) / 2);
    this.at(connection, askAt, () => {
      connection.requestToken();
      this.at(connection, expiresAt, () => {
        const expired = new ConcordError('token-expired', 'the token has expired; fetch a new one');
        this.refusals.record(expired, connection.document.name);
        connection.close(expired.closeEvent);
      });
    });
  }

  /** Runs `action` at `moment`; one pending action per connection. */
  private at(connection: Connection, moment: number, action: () => void): void {
    clearTimeout(this.expiryTimers.get(connection));
    const timer = setTimeout(
      () => (Date.now() < moment ? this.at(connection, moment, action) : action()),
      Math.min(Math.max(moment - Date.now(), 0), MAX_TIMER_MS),
    );
    timer.unref();
    this.expiryTimers.set(connection, timer);
  }
}
