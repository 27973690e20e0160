/**
 * The connection side of the example editor pages (bundled into each page by
 * serve-page.ts): one Concord document over a HocuspocusProvider, with the
 * page's status, role, saving state, connection trouble and refusals shown in
 * words. A refused write stays in the local replica (Yjs cannot take a change
 * back) and every later change would build on it, so a refusal stops the
 * replica: nothing more is sent, the page shows the local copy read-only (with
 * the refused change, so the user sees what was not saved) and offers Reload,
 * which drops it and loads a fresh replica from the server.
 *
 * The page must have elements with these ids: `status`, `saved`, `mode`,
 * `connection`, `message` and a `reload` button.
 */
import { HocuspocusProvider } from '@hocuspocus/provider';
import * as Y from 'yjs';

export type Role = 'viewer' | 'commenter' | 'editor' | 'admin';

/** The claims of a Concord token that the pages use. */
export interface Claims {
  sub: string;
  name?: string;
  role: Role;
}

/** What a page shows of a user, and what it puts in awareness as `user` (docs/several-instances.md, Presence). */
export interface User {
  id: string;
  name: string;
  color: string;
}

/** The awareness state Concord clients set (docs/several-instances.md, Presence). */
export interface PresenceState {
  user?: Partial<User>;
  focus?: { field?: string; lineId?: string; sectionId?: string } | null;
  status?: string;
}

/** docs/protocol.md: who may change content, and who may write comments. */
export const mayEditContent = (role: Role): boolean => role === 'editor' || role === 'admin';
export const mayComment = (role: Role): boolean => role !== 'viewer';

/** Every refusal code a client can meet (docs/protocol.md, "Refusal reasons"), in words a person can act on. */
const refusalWords: Record<string, string> = {
  'bad-token': 'the server does not accept this token (wrong secret, issuer or audience, or a missing claim); mint one with npm run -s token for this server',
  'token-expired': 'the token has expired; mint a new one and connect again',
  'wrong-tenant': "the document belongs to another tenant than the token's",
  'not-allowed': "the token's docs list does not name this document",
  'bad-document-name': 'the document name is not <tenant>/<kind>/<id>',
  'unknown-kind': 'the server serves no documents of that kind',
  'read-only': 'your role may read this document but not change it',
  'comments-only': 'your role may add comments, reply and resolve, and change nothing else',
  'foreign-client': 'the change was written under a Yjs client id another user writes under',
  'rate-limited': 'too many changes too fast; wait a moment',
  'document-frozen': "the document's status freezes its content",
  'bad-transition': 'that status change is not allowed',
  locked: 'someone else holds the lock',
  'invalid-value': 'a value breaks the document layout',
  'field-not-allowed': 'your role may not change that field',
  'bad-frame': 'the page sent a malformed message',
  'bad-update': 'the page sent an update that is not valid Yjs',
  'storage-unavailable': 'the server cannot reach its database right now; try again shortly',
};

/** A refusal as the server sends it (docs/protocol.md, "Refusal reasons"): a code, a message, and what it names. */
export interface Refusal {
  code: string;
  message?: string;
  /** The fields a refused write touched (`quote.title`, `quote_line.unitPrice`). */
  fields?: string[];
  /** The lock target it is about (`line:l-1`), and who holds that lock. */
  target?: string;
  holder?: { userId: string; name: string | null };
}

/** A refusal in words: what the code means, the server's own message if it says more, then the fields it names. */
export function describeRefusal({ code, message, fields, holder }: Refusal): string {
  const words = `${refusalWords[code] ?? 'the server gave no further reason'}${holder ? ` (${holder.name || holder.userId})` : ''}`;
  const described = message && message !== code ? `${words} (${code}: ${message})` : `${words} (${code})`;
  return fields?.length ? `${described}; fields: ${fields.join(', ')}` : described;
}

/** The refusal in a `concord:refused` stateless message, or null if it is not one. */
function readRefusal(message: Record<string, unknown>): Refusal | null {
  if (message.type !== 'concord:refused' || typeof message.code !== 'string') return null;
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
  const holder = message.holder as Refusal['holder'] | undefined;
  return {
    code: message.code,
    message: text(message.message),
    fields: Array.isArray(message.fields) ? message.fields.filter((field): field is string => typeof field === 'string') : undefined,
    target: text(message.target),
    holder: holder && typeof holder.userId === 'string' ? { userId: holder.userId, name: text(holder.name) ?? null } : undefined,
  };
}

/**
 * The token's payload, unverified: only for showing who this page acts as and
 * what it offers. The server verifies the signature and enforces the role.
 */
export function readClaims(token: string): Claims {
  const payload = token.split('.')[1];
  if (!payload) throw new Error('it is not a JWT');
  const binary = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
  const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)))) as Record<string, unknown>;
  if (typeof claims.sub !== 'string') throw new Error('it has no "sub" claim');
  const roles: readonly unknown[] = ['viewer', 'commenter', 'editor', 'admin'];
  return {
    sub: claims.sub,
    name: typeof claims.name === 'string' ? claims.name : undefined,
    // An absent role means viewer (docs/protocol.md); an unknown one gets no more than that here.
    role: roles.includes(claims.role) ? (claims.role as Role) : 'viewer',
  };
}

/** Six-digit hex colours: the only kind Tiptap's caret plugin accepts. */
const userColors = ['#c92a2a', '#1971c2', '#2b8a3e', '#862e9c', '#d9480f', '#0b7285', '#a61e4d', '#5c940d'];

/** The same colour for a user on every page and every visit. */
export function colorFor(userId: string): string {
  let hash = 0;
  for (const char of userId) hash = (hash * 31 + char.codePointAt(0)!) >>> 0;
  return userColors[hash % userColors.length]!;
}

export function element<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`index.html has no #${id}`);
  return found as T;
}

/** Everyone else with the document open (with a name), by awareness client id. */
export function othersPresent(provider: HocuspocusProvider): Array<{ clientId: number; state: PresenceState & { user: Partial<User> & { name: string } } }> {
  const awareness = provider.awareness;
  if (!awareness) return [];
  const others = [];
  for (const [clientId, state] of awareness.getStates() as Map<number, PresenceState>) {
    if (clientId === awareness.clientID || !state.user?.name) continue;
    others.push({ clientId, state: state as PresenceState & { user: Partial<User> & { name: string } } });
  }
  return others;
}

/** One replica of the document: a Y.Doc and the provider that syncs it. */
export interface Replica {
  provider: HocuspocusProvider;
  doc: Y.Doc;
}

export interface SessionOptions {
  url: string;
  token: string;
  documentName: string;
  /** Says what the role means on this page ("Read-only: ..."), shown in #mode. */
  describeMode(role: Role): string;
  /** Binds the page to a replica once it has synced; called again for each reloaded replica. Returns what undoes it. */
  bind(replica: Replica, session: DocumentSession): () => void;
  /** Called when others' awareness changes (and when a replica is replaced). */
  onPresence?(replica: Replica): void;
  /** Every stateless message from the server that is not a refusal (JSON, with a `type`). */
  onMessage?(message: Record<string, unknown>): void;
  /**
   * Whether a refusal answers a request of the page's own (a lock), which the
   * page shows itself. Any other refusal is of a write, and stops the replica.
   */
  claimRefusal?(refusal: Refusal): boolean;
}

/** Close codes a browser reports for sockets that failed or dropped, in words. */
function describeClose(code: number): string {
  if (code === 1006) return 'no answer, or the connection dropped';
  if (code === 1003) return 'the server refused a message it cannot read';
  if (code === 1009) return 'a message was too large for the server';
  return `closed with code ${code}`;
}

/**
 * One document open on the page. Status, saving state, role and trouble are
 * written to the page's elements; `bind` connects the page's own UI to the
 * replica. Opening a new session closes the previous one first.
 */
export class DocumentSession {
  readonly claims: Claims;
  readonly user: User;
  private readonly options: SessionOptions;
  private replica: Replica | undefined;
  private unbind: (() => void) | undefined;
  /** Awareness fields the page set, put again on every reloaded replica. */
  private readonly presence = new Map<string, unknown>();
  /** Whether any replica of this session has reached the server (a wrong URL never does). */
  private reachedServer = false;
  /** The server opened the document read-only (its `authenticated` scope), whatever the token claims. */
  private serverReadOnly = false;
  /** The server refused a write of this replica: it sends nothing more and is shown read-only until reloaded. */
  private stopped = false;

  private static current: DocumentSession | undefined;

  /** Opens a session, or explains in #message why it cannot (a token that is no JWT, a URL that is no WebSocket URL). */
  static open(options: SessionOptions): DocumentSession | undefined {
    DocumentSession.current?.close();
    DocumentSession.current = undefined;
    showMessage('');
    showConnection('');
    let claims: Claims;
    try {
      claims = readClaims(options.token);
    } catch (error) {
      showMessage(`That token cannot be read: ${(error as Error).message}.`);
      return undefined;
    }
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      url = new URL('invalid:');
    }
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
      showConnection(`"${options.url}" is not a WebSocket URL: the server's address is ws://host:port (wss:// behind TLS), e.g. ws://127.0.0.1:8787.`);
      return undefined;
    }
    DocumentSession.current = new DocumentSession(options, claims);
    return DocumentSession.current;
  }

  private constructor(options: SessionOptions, claims: Claims) {
    this.options = options;
    this.claims = claims;
    this.user = { id: claims.sub, name: claims.name || claims.sub, color: colorFor(claims.sub) };
    element('me').textContent = `${this.user.name} (${claims.role})`;
    this.showMode();
    this.load();
  }

  /** Whether the page should offer content edits: the token's role, unless the server said read-only. */
  get mayEditContent(): boolean {
    return !this.serverReadOnly && !this.stopped && mayEditContent(this.claims.role);
  }

  get mayComment(): boolean {
    return !this.serverReadOnly && !this.stopped && mayComment(this.claims.role);
  }

  /** Whether the replica was stopped by a refused write (see `stop`). */
  get isStopped(): boolean {
    return this.stopped;
  }

  /** Sets an awareness field now and on every later replica of this session. */
  setPresence(key: string, value: unknown): void {
    this.presence.set(key, value);
    this.replica?.provider.setAwarenessField(key, value);
  }

  /** Drops the local replica and loads the document again from the server. */
  reload(): void {
    showMessage('');
    this.dropReplica();
    this.load();
  }

  close(): void {
    this.dropReplica();
    element('presence').replaceChildren();
    showStatus('not connected');
    element('saved').textContent = '';
  }

  private load(): void {
    const { url, token, documentName } = this.options;
    const doc = new Y.Doc();
    const provider = new HocuspocusProvider({ url, name: documentName, token, document: doc });
    const replica: Replica = { provider, doc };
    this.replica = replica;
    this.stopped = false;
    element('reload').hidden = true;
    showStatus('connecting');
    // Present from the start, also if the document then cannot be opened.
    provider.setAwarenessField('user', this.user);
    for (const [key, value] of this.presence) provider.setAwarenessField(key, value);

    // Events of a replica since dropped must not touch the page.
    const live = () => this.replica === replica;
    provider.on('status', ({ status }: { status: string }) => {
      if (live()) showStatus(status);
    });
    provider.on('connect', () => {
      if (!live()) return;
      this.reachedServer = true;
      showConnection('');
    });
    provider.on('close', ({ event }: { event: { code: number; reason: string } }) => {
      if (live()) this.closed(event);
    });
    provider.on('authenticationFailed', ({ reason }: { reason: string }) => {
      if (!live()) return;
      // A refused token will not start working on a retry, so stop trying.
      this.dropReplica();
      showStatus('refused');
      showMessage(`The server refused to open ${documentName}: ${describeRefusal({ code: reason })}.`);
    });
    provider.on('authenticated', ({ scope }: { scope: string }) => {
      if (!live()) return;
      this.serverReadOnly = scope === 'readonly';
      this.showMode();
    });
    provider.on('stateless', ({ payload }: { payload: string }) => {
      if (live()) this.stateless(payload);
    });
    provider.on('awarenessChange', () => {
      if (live()) this.options.onPresence?.(replica);
    });
    provider.on('unsyncedChanges', ({ number }: { number: number }) => {
      if (live()) this.showSaved(number);
    });
    // 'synced' fires again after every reconnect; the page is bound once per replica.
    provider.on('synced', () => {
      if (!live()) return;
      this.unbind ??= this.options.bind(replica, this);
      showStatus('synced');
      this.showSaved(provider.unsyncedChanges);
    });
  }

  private dropReplica(): void {
    const replica = this.replica;
    // First, so that nothing the provider emits while it closes reaches the page.
    this.replica = undefined;
    this.unbind?.();
    this.unbind = undefined;
    replica?.provider.destroy();
    replica?.doc.destroy();
  }

  private stateless(payload: string): void {
    let message: unknown;
    try {
      message = JSON.parse(payload);
    } catch {
      return;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) return;
    const refusal = readRefusal(message as Record<string, unknown>);
    if (!refusal) this.options.onMessage?.(message as Record<string, unknown>);
    else if (!this.options.claimRefusal?.(refusal)) this.stop(refusal);
  }

  /**
   * A write was refused. It stays in this replica, and every later change
   * would build on it (and be held back by the server), so the replica sends
   * nothing more; the page is bound again read-only, still showing the refused
   * change, until the user reloads.
   */
  private stop(refusal: Refusal): void {
    const replica = this.replica;
    if (!replica || this.stopped) return;
    this.unbind?.();
    this.stopped = true;
    replica.provider.destroy();
    showStatus('stopped');
    element('saved').textContent = '';
    element('presence').replaceChildren();
    showMessage(
      `The server refused a change: ${describeRefusal(refusal)}. ` +
        "It was not saved, and this page sends nothing more: press Reload to go on from the server's copy.",
    );
    element('reload').hidden = false;
    this.showMode();
    this.unbind = this.options.bind(replica, this);
  }

  /** A socket that failed or dropped (the provider retries), or one document closed by the server (it does not). */
  private closed(event: { code: number; reason: string }): void {
    const { url, documentName } = this.options;
    if (Object.hasOwn(refusalWords, event.reason)) {
      this.dropReplica();
      showStatus('closed');
      showMessage(`The server closed ${documentName}: ${describeRefusal({ code: event.reason })}.`);
      element('reload').hidden = false;
      return;
    }
    showConnection(
      this.reachedServer
        ? `Lost the connection to ${url} (${describeClose(event.code)}). Your changes stay in this page and are sent when it is back; reconnecting...`
        : `Cannot reach a Concord server at ${url} (${describeClose(event.code)}). Check the URL and that the server is running (npm start); still trying...`,
    );
  }

  private showMode(): void {
    const mode = element('mode');
    if (this.stopped) {
      mode.textContent = 'Stopped: the server refused a change; nothing is sent until you reload.';
      mode.dataset.mode = 'read';
      return;
    }
    const role: Role = this.serverReadOnly ? 'viewer' : this.claims.role;
    mode.textContent = this.options.describeMode(role);
    mode.dataset.mode = mayEditContent(role) ? 'edit' : mayComment(role) ? 'comment' : 'read';
  }

  /** Concord acknowledges a change only once it is committed to Postgres, so 0 unacknowledged means saved. */
  private showSaved(unacknowledged: number): void {
    const saved = element('saved');
    if (!this.mayComment && unacknowledged === 0) saved.textContent = 'read-only: nothing to save';
    else saved.textContent = unacknowledged === 0 ? 'all changes saved' : `saving ${unacknowledged} change(s)`;
  }
}

function showStatus(status: string): void {
  element('status').textContent = status;
}

/** Connection trouble (cleared once the server answers). */
function showConnection(text: string): void {
  element('connection').textContent = text;
}

/** Refusals and other things the user must know (kept until the next connect). */
export function showMessage(text: string): void {
  element('message').textContent = text;
}
