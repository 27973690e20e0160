import type {
  afterLoadDocumentPayload,
  beforeHandleAwarenessPayload,
  Connection,
  connectedPayload,
  Document,
  Extension,
} from '@hocuspocus/server';
import { isTransactionOrigin } from '@hocuspocus/server';
import { isDeepStrictEqual } from 'node:util';
import { outdatedTimeout } from 'y-protocols/awareness';
import type { ConnectionContext } from '../context.ts';
import { colorSchema, focusSchema, presenceStatus, type PresenceEntry } from './entry.ts';

interface Session {
  connection: Connection;
  context: ConnectionContext;
  since: number;
  lastActiveAt: number;
}

/**
 * Who has which document open on this instance, and what their awareness
 * says. The identity in an awareness state is always the token's: the `user`
 * of every state a connection sends is stamped with its user id and name
 * (only a valid `color` of the client's own is kept), and a connection cannot
 * speak for an awareness client id that another client uses, on this instance
 * or on another one. The identity thus travels as the token says to the other
 * clients and, through Redis, to the other instances.
 */
export class PresenceSessions implements Extension {
  extensionName = 'concord-presence';

  private readonly byDocument = new Map<string, Map<Connection, Session>>();
  private readonly instance: string;
  private readonly idleMs: number;
  private readonly changed: (documentName: string) => void;

  constructor(instance: string, idleMs: number, changed: (documentName: string) => void) {
    this.instance = instance;
    this.idleMs = idleMs;
    this.changed = changed;
  }

  async connected({ connection, context, documentName }: connectedPayload<ConnectionContext>): Promise<void> {
    const sessions = this.byDocument.get(documentName) ?? new Map<Connection, Session>();
    this.byDocument.set(documentName, sessions);
    const now = Date.now();
    sessions.set(connection, { connection, context, since: now, lastActiveAt: now });
    connection.onClose(() => {
      sessions.delete(connection);
      if (sessions.size === 0 && this.byDocument.get(documentName) === sessions) this.byDocument.delete(documentName);
      this.changed(documentName);
    });
    this.changed(documentName);
  }

  async afterLoadDocument({ document, documentName }: afterLoadDocumentPayload): Promise<void> {
    // Edits count as activity.
    document.on('update', (_update: Uint8Array, origin: unknown) => {
      const session = isTransactionOrigin(origin) && origin.source === 'connection' && this.byDocument.get(documentName)?.get(origin.connection);
      if (session) this.active(documentName, session);
    });
    recordAwarenessOwners(document);
  }

  async beforeHandleAwareness({ states, connection, document, documentName }: beforeHandleAwarenessPayload): Promise<void> {
    // Relayed states were stamped by the instance their connection is on.
    if (!connection) return;
    // Set at authentication, before any message of the connection is handled (`connected` may come later).
    const { principal } = connection.context as ConnectionContext;
    let changed = false;
    for (const [clientId, state] of states) {
      // A state must be an object to carry an identity; anything else is dropped.
      if (state === null || typeof state !== 'object' || Array.isArray(state) || speaksForAnother(document, clientId, connection)) {
        states.delete(clientId);
        continue;
      }
      const color = colorSchema.safeParse(state.user?.color);
      state.user = { id: principal.userId, name: principal.name, ...(color.success && { color: color.data }) };
      changed ||= isChange(document.awareness.getStates().get(clientId), state);
    }
    const session = this.byDocument.get(documentName)?.get(connection);
    if (changed && session) this.active(documentName, session);
  }

  /** The users who have `documentName` open on this instance. */
  entries(documentName: string, document: Document | undefined): PresenceEntry[] {
    const now = Date.now();
    const byUser = new Map<string, PresenceEntry & { lastActive: number }>();
    for (const session of this.byDocument.get(documentName)?.values() ?? []) {
      const entry = this.entryOf(session, document, now);
      const known = byUser.get(entry.userId);
      if (!known) byUser.set(entry.userId, entry);
      else if (entry.lastActive > known.lastActive) byUser.set(entry.userId, { ...entry, since: minIso(known.since, entry.since) });
      else known.since = minIso(known.since, entry.since);
    }
    return [...byUser.values()].map(({ lastActive: _, ...entry }) => entry);
  }

  /** Names of the documents with someone on this instance. */
  documentNames(): string[] {
    return [...this.byDocument.keys()];
  }

  private entryOf(session: Session, document: Document | undefined, now: number): PresenceEntry & { lastActive: number } {
    const clients = [...(document?.getClients(session.connection) ?? [])];
    const state = clients.map((clientId) => document!.awareness.getStates().get(clientId)).find((found) => found !== undefined);
    const declared = presenceStatus.safeParse(state?.status);
    const focus = focusSchema.safeParse(state?.focus);
    const quiet = now - session.lastActiveAt >= this.idleMs;
    return {
      userId: session.context.principal.userId,
      name: session.context.principal.name,
      status: quiet ? 'idle' : declared.success ? declared.data : 'viewing',
      focus: focus.success ? focus.data : null,
      instance: this.instance,
      since: new Date(session.since).toISOString(),
      lastActiveAt: new Date(session.lastActiveAt).toISOString(),
      lastActive: session.lastActiveAt,
    };
  }

  private active(documentName: string, session: Session): void {
    session.lastActiveAt = Date.now();
    this.changed(documentName);
  }
}

/**
 * Whether `clientId` is another client's: one that another connection here
 * speaks for, or one whose state another instance relays and renewed within
 * y-protocols' `outdatedTimeout` (30 s; providers renew every 15 s). A relayed
 * state older than that is a client that is gone, which may have reconnected
 * here after its instance stopped: its id may be taken over.
 */
function speaksForAnother(document: Document, clientId: number, connection: Connection): boolean {
  if (document.getClients(connection).has(clientId)) return false;
  if (document.getConnections().some((other) => document.getClients(other).has(clientId))) return true;
  const lastUpdated = document.awareness.meta.get(clientId)?.lastUpdated;
  return document.awareness.getStates().has(clientId) && lastUpdated !== undefined && Date.now() - lastUpdated <= outdatedTimeout;
}

/**
 * Hocuspocus records a connection's awareness client ids only when they are
 * new to the document (y-protocols' `added`). A client id that comes back (a
 * provider reconnecting with its state already known here, a gone relayed
 * client taken over) is `updated` instead; recording those too keeps the
 * ownership `speaksForAnother` reads complete, and lets Hocuspocus remove
 * their states when the connection closes.
 */
function recordAwarenessOwners(document: Document): void {
  document.awareness.on('update', ({ updated }: { updated: number[] }, origin: unknown) => {
    if (!isTransactionOrigin(origin) || origin.source !== 'connection') return;
    const owned = document.getClients(origin.connection);
    for (const clientId of updated) owned.add(clientId);
  });
}

/**
 * Whether a state changes what is known of its client. Providers renew an
 * unchanged state every 15 s, and Hocuspocus adds a state of its own to every
 * awareness message (an empty one, which it never applies): neither is activity.
 */
function isChange(before: Record<string, unknown> | undefined, after: Record<string, unknown>): boolean {
  if (before) return !isDeepStrictEqual(before, after);
  return Object.keys(after).some((key) => key !== 'user');
}

function minIso(a: string, b: string): string {
  return a < b ? a : b;
}
