import type {
  beforeHandleMessagePayload,
  connectedPayload,
  Connection,
  Extension,
  onAuthenticatePayload,
  onTokenSyncPayload,
} from '@hocuspocus/server';
import * as Y from 'yjs';
import type { ConnectionContext } from '../context.ts';
import { parseDocumentName, type DocumentName } from '../documents/name.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { readFrame } from '../protocol.ts';
import type { Principal, Role, TokenVerifier } from './tokens.ts';

const contentWriters: ReadonlySet<Role> = new Set(['editor', 'admin']);
// setTimeout's longest delay; a later moment is re-checked when it fires.
const MAX_TIMER_MS = 2 ** 31 - 1;
// How long before expiry the server asks the provider for a fresh token (at
// most half the token's remaining lifetime).
const REFRESH_LEAD_MS = 30_000;

/** A refusal the client receives as a stateless message: `{"type":"concord:refused",...}`. */
export function refusalMessage(error: ConcordError): string {
  return JSON.stringify({ type: 'concord:refused', ...error.toJSON() });
}

/**
 * Authenticates and authorizes every document of every socket on its own:
 * the token must verify, its tenant must be the document's, its `docs` list
 * (if any) must name the document, and only editors and admins may change
 * content. Shortly before a token expires the server asks the provider for a
 * fresh one (the provider calls its `token` function); without one, the
 * connection to that document ends at expiry.
 */
export class Authorization implements Extension {
  extensionName = 'concord-authorization';

  private readonly verify: TokenVerifier;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly expiryTimers = new WeakMap<Connection, NodeJS.Timeout>();

  constructor(verify: TokenVerifier, log: Logger, metrics: Metrics) {
    this.verify = verify;
    this.log = log;
    this.metrics = metrics;
  }

  async onAuthenticate({ token, documentName, connectionConfig }: onAuthenticatePayload): Promise<ConnectionContext> {
    try {
      const document = parseDocumentName(documentName);
      const principal = await this.authorize(token, document);
      connectionConfig.readOnly = !contentWriters.has(principal.role);
      return { principal, document };
    } catch (error) {
      this.refused(error, documentName);
      throw error;
    }
  }

  async connected({ connection, context }: connectedPayload<ConnectionContext>): Promise<void> {
    connection.onClose(() => clearTimeout(this.expiryTimers.get(connection)));
    this.watchExpiry(connection, context.principal.expiresAt);
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
      connection.readOnly = !contentWriters.has(principal.role);
      // Only a later expiry moves the timers (asking again for the same one would loop).
      if (expiresLater) this.watchExpiry(connection, principal.expiresAt);
    } catch (error) {
      this.refused(error, documentName);
      throw error;
    }
  }

  /** Tells a read-only client why its change went nowhere (Hocuspocus answers it "not applied"). */
  async beforeHandleMessage({ connection, update, document }: beforeHandleMessagePayload): Promise<void> {
    if (!connection.readOnly) return;
    const frame = readFrame(update);
    if (!frame.update || Y.snapshotContainsUpdate(Y.snapshot(document), frame.update)) return;
    const { principal } = connection.context as ConnectionContext;
    const error = new ConcordError('read-only', `role "${principal.role}" may not change this document; the change was not applied`);
    this.refused(error, document.name);
    connection.sendStateless(refusalMessage(error));
  }

  private async authorize(token: string, document: DocumentName): Promise<Principal> {
    const principal = await this.verify(token);
    if (principal.tenant !== document.tenant) {
      throw new ConcordError('wrong-tenant', `the token is for tenant "${principal.tenant}", not "${document.tenant}"`);
    }
    if (principal.docs && !principal.docs.includes(`${document.kind}/${document.id}`)) {
      throw new ConcordError('not-allowed', `the token does not grant ${document.kind}/${document.id}`);
    }
    return principal;
  }

  /** Asks for a fresh token shortly before `expiresAt`, and closes the document at `expiresAt`. */
  private watchExpiry(connection: Connection, expiresAt: number): void {
    const askAt = expiresAt - Math.min(REFRESH_LEAD_MS, (expiresAt - Date.now()) / 2);
    this.at(connection, askAt, () => {
      connection.requestToken();
      this.at(connection, expiresAt, () => {
        this.metrics.refusals.inc({ code: 'token-expired' });
        connection.close(new ConcordError('token-expired', 'the token has expired; fetch a new one').closeEvent);
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

  private refused(error: unknown, documentName: string): void {
    const code = error instanceof ConcordError ? error.code : 'internal';
    this.metrics.refusals.inc({ code });
    this.log.info({ code, document: documentName.slice(0, 200), reason: (error as Error).message }, 'refused');
  }
}
