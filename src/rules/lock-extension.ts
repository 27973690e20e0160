import type {
  afterLoadDocumentPayload,
  afterUnloadDocumentPayload,
  connectedPayload,
  Connection,
  Extension,
  onDisconnectPayload,
  onStatelessPayload,
} from '@hocuspocus/server';
import { z } from 'zod';
import { refusalMessage } from '../auth/write-refusals.ts';
import { isServerEdit, type ConnectionContext } from '../context.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { DocumentLocks } from './locks.ts';

const target = z.string().max(300);
const lockRequest = z.discriminatedUnion('type', [
  z.object({ type: z.literal('concord:lock'), target, ttlSeconds: z.number().optional() }),
  z.object({ type: z.literal('concord:unlock'), target }),
]);

/**
 * Locks over the WebSocket (docs/locks.md): a client sends
 * `{"type":"concord:lock","target":"line:l1","ttlSeconds":30}` or
 * `{"type":"concord:unlock","target":"line:l1"}` as a stateless message;
 * every connection of the document, on every instance, is sent
 * `{"type":"concord:locks","locks":[...]}` when the locks change, and each new
 * connection when it connects. A refused request is answered to its
 * connection alone with `concord:refused`. A user's locks on a document are
 * released when their last connection to it on this instance closes.
 */
export class Locks implements Extension {
  extensionName = 'concord-locks';

  private readonly locks: DocumentLocks;
  private readonly log: Logger;
  /** Per connection, the last request under way. */
  private readonly requests = new WeakMap<Connection, Promise<void>>();

  constructor(locks: DocumentLocks, log: Logger) {
    this.locks = locks;
    this.log = log;
  }

  async afterLoadDocument({ documentName, document }: afterLoadDocumentPayload): Promise<void> {
    await this.locks.load(documentName, document);
  }

  async afterUnloadDocument({ documentName }: afterUnloadDocumentPayload): Promise<void> {
    this.locks.forget(documentName);
  }

  async connected({ connection, documentName }: connectedPayload<ConnectionContext>): Promise<void> {
    connection.sendStateless(this.locks.message(documentName));
  }

  async onDisconnect({ context, document }: onDisconnectPayload): Promise<void> {
    // Server-side edits (PATCH, restore) disconnect too; they hold no locks of their own.
    if (isServerEdit(context)) return;
    const { principal, document: name } = context as Partial<ConnectionContext>;
    if (!principal || !name) return;
    // The closing connection has already left the document's connections.
    const stays = document.getConnections().some((other) => (other.context as ConnectionContext).principal.userId === principal.userId);
    if (!stays) this.locks.releaseAllOf(name, principal.userId);
  }

  /** Neither awaited nor caught by Hocuspocus (a throw would end the process): every failure is answered or logged here. */
  /**
   * One connection's requests are handled in the order sent (Hocuspocus does
   * not wait for one before the next): a lock then an unlock never ends locked.
   */
  async onStateless({ connection, payload }: onStatelessPayload): Promise<void> {
    const previous = this.requests.get(connection) ?? Promise.resolve();
    const handled = previous.then(() => this.handle(connection, payload));
    this.requests.set(connection, handled);
    await handled;
    if (this.requests.get(connection) === handled) this.requests.delete(connection);
  }

  private async handle(connection: Connection, payload: string): Promise<void> {
    try {
      const request = parseRequest(payload);
      if (!request) return;
      const { principal, document } = connection.context as ConnectionContext;
      if (request.type === 'concord:lock') await this.locks.acquire(principal, document, request.target, request.ttlSeconds);
      else await this.locks.release(principal, document, request.target);
    } catch (error) {
      this.refuse(connection, error);
    }
  }

  private refuse(connection: Connection, error: unknown): void {
    try {
      const refusal = error instanceof ConcordError ? error : new ConcordError('internal', 'the lock request failed; try again');
      if (refusal.code === 'internal') this.log.error({ err: error, code: 'internal', document: connection.document.name }, 'a lock request failed');
      else this.log.info({ code: refusal.code, document: connection.document.name, reason: refusal.message }, 'refused');
      connection.sendStateless(refusalMessage(refusal));
    } catch (failure) {
      this.log.error({ err: failure, code: 'internal' }, 'could not answer a lock request');
    }
  }
}

/** A lock request, or null for a stateless message that is none (not ours to answer); `bad-request` for a malformed one. */
function parseRequest(payload: string): z.infer<typeof lockRequest> | null {
  let message: unknown;
  try {
    message = JSON.parse(payload);
  } catch {
    return null;
  }
  const type = (message as { type?: unknown } | null)?.type;
  if (type !== 'concord:lock' && type !== 'concord:unlock') return null;
  const parsed = lockRequest.safeParse(message);
  if (!parsed.success) throw new ConcordError('bad-request', `${type} needs a target (a string)${type === 'concord:lock' ? ' and may have ttlSeconds (a number)' : ''}`);
  return parsed.data;
}
