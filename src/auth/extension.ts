import type {
  beforeHandleMessagePayload,
  connectedPayload,
  Connection,
  Extension,
  onAuthenticatePayload,
} from '@hocuspocus/server';
import * as Y from 'yjs';
import type { ConnectionContext } from '../context.ts';
import { parseDocumentName } from '../documents/name.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { readFrame } from '../protocol.ts';
import type { Role, TokenVerifier } from './tokens.ts';

const contentWriters: ReadonlySet<Role> = new Set(['editor', 'admin']);
// setTimeout's longest delay; a later expiry is re-checked when it fires.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A refusal the client receives as a stateless message: `{"type":"concord:refused",...}`. */
export function refusalMessage(error: ConcordError): string {
  return JSON.stringify({ type: 'concord:refused', ...error.toJSON() });
}

/**
 * Authenticates and authorizes every document of every socket on its own:
 * the token must verify, its tenant must be the document's, its `docs` list
 * (if any) must name the document, and only editors and admins may change
 * content. The connection to a document ends when its token expires.
 */
export class Authorization implements Extension {
  extensionName = 'concord-authorization';

  private readonly verify: TokenVerifier;
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(verify: TokenVerifier, log: Logger, metrics: Metrics) {
    this.verify = verify;
    this.log = log;
    this.metrics = metrics;
  }

  async onAuthenticate({ token, documentName, connectionConfig }: onAuthenticatePayload): Promise<ConnectionContext> {
    try {
      const document = parseDocumentName(documentName);
      const principal = await this.verify(token);
      if (principal.tenant !== document.tenant) {
        throw new ConcordError('wrong-tenant', `the token is for tenant "${principal.tenant}", not "${document.tenant}"`);
      }
      if (principal.docs && !principal.docs.includes(`${document.kind}/${document.id}`)) {
        throw new ConcordError('not-allowed', `the token does not grant ${document.kind}/${document.id}`);
      }
      connectionConfig.readOnly = !contentWriters.has(principal.role);
      return { principal, document };
    } catch (error) {
      this.refused(error, documentName);
      throw error;
    }
  }

  async connected({ connection, context }: connectedPayload<ConnectionContext>): Promise<void> {
    this.closeAtExpiry(connection, context.principal.expiresAt);
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

  private closeAtExpiry(connection: Connection, expiresAt: number): void {
    const timer = setTimeout(() => {
      if (Date.now() < expiresAt) return this.closeAtExpiry(connection, expiresAt);
      this.metrics.refusals.inc({ code: 'token-expired' });
      connection.close(new ConcordError('token-expired', 'the token has expired; fetch a new one').closeEvent);
    }, Math.min(Math.max(expiresAt - Date.now(), 0), MAX_TIMER_MS));
    timer.unref();
    connection.onClose(() => clearTimeout(timer));
  }

  private refused(error: unknown, documentName: string): void {
    const code = error instanceof ConcordError ? error.code : 'internal';
    this.metrics.refusals.inc({ code });
    this.log.info({ code, document: documentName.slice(0, 200), reason: (error as Error).message }, 'refused');
  }
}
