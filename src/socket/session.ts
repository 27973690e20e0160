import type { Duplex } from 'node:stream';
import { MessageType, OutgoingMessage, type Hocuspocus } from '@hocuspocus/server';
import type { Redis } from 'ioredis';
import type { RawData, WebSocket } from 'ws';
import type { TokenVerifier } from '../auth/tokens.ts';
import { refusalMessage } from '../auth/write-refusals.ts';
import type { Config } from '../config.ts';
import type { SocketContext } from '../context.ts';
import { ConcordError } from '../errors.ts';
import { createLimiter, createRefundableLimiter, type Spend } from '../limits/limiter.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { FrameRefusal, readFrame, readHeader, updateFrame } from '../protocol.ts';
import { within } from '../timeouts.ts';
import { WatchedSocket } from './watched-socket.ts';
import { WriteCoalescer } from './write-coalescer.ts';

// The burst budgets are renewed over this window (rate-limiter-flexible's fixed windows).
const BURST_WINDOW_SECONDS = 10;
// How often a backed-up socket is looked at: has its client read enough to go on, or stalled too long?
const BACKLOG_CHECK_MS = 50;
// Longest a document's load waits for the network to take its stored content sent early (the client's link may be slow).
const STORED_CONTENT_WAIT_MS = 50;

/**
 * What Hocuspocus buffers for documents that have not finished authenticating
 * on one socket (its own defaults, set explicitly). The socket refuses a frame
 * that would pass them before Hocuspocus sees it: Hocuspocus would close the
 * socket too, but with a plain-text console line and a generic reason.
 */
export const unauthenticatedQueue = {
  maxPendingDocuments: 100,
  maxUnauthenticatedQueueMessages: 1_000,
  maxUnauthenticatedQueueSize: 5 * 1024 * 1024,
} as const;

/** Message types a client needs answered: refusing one leaves its provider waiting, so the socket is closed instead. */
const ANSWERED = new Set<number>([MessageType.Sync, MessageType.SyncReply, MessageType.Auth]);

type SocketLimit =
  | 'SOCKET_MESSAGES_PER_SECOND'
  | 'SOCKET_BYTES_PER_SECOND'
  | 'SOCKET_UNSENT_MAX_BYTES'
  | 'SYNC_REQUESTS_PER_WINDOW'
  | 'SYNC_REQUESTS_PER_USER_PER_WINDOW'
  | 'UNAUTHENTICATED_TIMEOUT_MS'
  | 'UNAUTHENTICATED_QUEUE';

/** The per-socket budgets, shared by every socket of the process (each socket is its own key). */
export interface SocketLimits {
  messages: Spend;
  bytes: Spend;
  /** Sync requests per document on the socket (a reopened document keeps its budget). */
  syncRequests: Spend;
  syncRequestsPerWindow: number;
  /** Sync requests per user, over all their sockets (and instances, with Redis); refunded for a document refused at authentication. */
  userSyncRequests: ReturnType<typeof createRefundableLimiter>;
  userSyncRequestsPerWindow: number;
  syncWindowSeconds: number;
  /** A socket refused this many messages, or bytes, in a row (a whole burst's worth) is closed: it is flooding, not bursting. */
  floodMessages: number;
  floodBytes: number;
  unauthenticatedTimeoutMs: number;
  /** Bytes the client may leave unread before the socket's messages wait for it to read. */
  maxUnsentBytes: number;
  /** Longest a client over maxUnsentBytes may read nothing before its socket is cut. */
  stallTimeoutMs: number;
}

export function createSocketLimits(config: Config, redis: Redis | null): SocketLimits {
  return {
    messages: withBurst('SOCKET_MESSAGES_PER_SECOND', config.SOCKET_MESSAGES_PER_SECOND, config.SOCKET_MESSAGE_BURST),
    bytes: withBurst('SOCKET_BYTES_PER_SECOND', config.SOCKET_BYTES_PER_SECOND, config.SOCKET_BYTE_BURST),
    syncRequests: createLimiter({ name: 'SYNC_REQUESTS_PER_WINDOW', points: config.SYNC_REQUESTS_PER_WINDOW, durationSeconds: config.SYNC_WINDOW_SECONDS }, null),
    syncRequestsPerWindow: config.SYNC_REQUESTS_PER_WINDOW,
    userSyncRequests: createRefundableLimiter(
      { name: 'SYNC_REQUESTS_PER_USER_PER_WINDOW', points: config.SYNC_REQUESTS_PER_USER_PER_WINDOW, durationSeconds: config.SYNC_WINDOW_SECONDS },
      redis,
    ),
    userSyncRequestsPerWindow: config.SYNC_REQUESTS_PER_USER_PER_WINDOW,
    syncWindowSeconds: config.SYNC_WINDOW_SECONDS,
    floodMessages: config.SOCKET_MESSAGE_BURST,
    floodBytes: config.SOCKET_BYTE_BURST,
    unauthenticatedTimeoutMs: config.UNAUTHENTICATED_TIMEOUT_MS,
    maxUnsentBytes: config.SOCKET_UNSENT_MAX_BYTES,
    stallTimeoutMs: config.SOCKET_STALL_TIMEOUT_MS,
  };
}

/**
 * A rate per second, plus a reserve for bursts renewed every 10 s, spent
 * only when the rate is used up (as rate-limiter-flexible's BurstyRateLimiter
 * does, on createLimiter's budgets). In memory: a socket lives on one instance.
 */
function withBurst(name: string, perSecond: number, burst: number): Spend {
  const steady = createLimiter({ name, points: perSecond, durationSeconds: 1 }, null);
  const reserve = createLimiter({ name: `${name}:burst`, points: burst, durationSeconds: BURST_WINDOW_SECONDS }, null);
  return async (key, points) => ((await steady(key, points)) === null ? null : reserve(key, points));
}

/**
 * What Hocuspocus 4.7 reads of a socket's request: its url (the hooks'
 * requestParameters, read again for every message) and its headers. A plain
 * object, kept by every socket, rather than a fetch Request: fewer objects per
 * connection, and a url without a host is read without a URL parser.
 */
export type UpgradeRequest = Pick<Request, 'url' | 'headers'>;

/** Sockets opened by this process so far: each one's number is its key in the per-socket budgets. */
let socketsOpened = 0;

export interface SocketDependencies {
  hocuspocus: Hocuspocus;
  limits: SocketLimits;
  /** Verifies a document's token: whose sync budget its requests spend. */
  verify: TokenVerifier;
  metrics: Metrics;
  log: Logger;
}

/** What Concord tracks of a document that has not finished authenticating on this socket. */
interface Pending {
  messages: number;
  bytes: number;
  authSeen: boolean;
  authenticated: boolean;
  /** Sync requests spent from its user's budget while it waits: given back if it is refused (they are never answered). */
  syncRequestsSpent?: number;
  /** It asked for everything (a sync step 1 with an empty state vector): its stored content may be sent ahead of the load. */
  holdsNothing?: boolean;
}

/**
 * One WebSocket, from upgrade to close. Every frame is checked here before
 * Hocuspocus handles it: against the socket's message and byte budgets, then
 * read whole (protocol.ts readFrame), so that every refusal carries Concord's
 * code and is logged as one JSON line. A malformed frame closes its document
 * (`bad-frame`, or `bad-update`), or the whole socket when not even its
 * document can be read. A socket that authenticates nothing within
 * UNAUTHENTICATED_TIMEOUT_MS is closed.
 */
export class SocketSession {
  private readonly ws: WebSocket;
  private readonly socket: WatchedSocket;
  private readonly writes: WriteCoalescer;
  private readonly client: ReturnType<Hocuspocus['handleConnection']>;
  private readonly deps: SocketDependencies;
  /**
   * The socket's key in its budgets, which are kept in this process only: a number. (A UUID string is a
   * rope of about 16 strings, kept as long as the socket: 5,000 sockets held 80,000 more objects to mark.)
   */
  private readonly key = String(++socketsOpened);
  private readonly pending = new Map<string, Pending>();
  /** Document names closed for too many sync requests: they hear nothing more until they authenticate again. */
  private readonly closedForSyncRequests = new Set<string>();
  /** Whose each document of the socket is (`tenant/sub` of its verified token): whose sync budget its requests spend. */
  private readonly users = new Map<string, string>();
  /** Until it has fired: a fired timer keeps its callback, and every socket would keep one. */
  private unauthenticatedTimer: NodeJS.Timeout | undefined;
  /** Frames are handled one after another: budgets are spent asynchronously, and Hocuspocus must see them in order. */
  private tail = Promise.resolve();
  private closing = false;
  /** Set while the client has more than SOCKET_UNSENT_MAX_BYTES unread: settled once it has read enough, or the socket is cut. */
  private backlog: { settled: Promise<void>; settle: () => void; timer: NodeJS.Timeout } | null = null;
  /** Refused in a row since the last message within budget, and the documents told so. */
  private streak = { messages: 0, bytes: 0, told: new Set<string>() };

  /** `transport`: the connection under `ws` (the upgrade's socket), whose writes are coalesced per burst. */
  constructor(ws: WebSocket, transport: Duplex, request: UpgradeRequest, deps: SocketDependencies) {
    this.ws = ws;
    this.deps = deps;
    // Unsent bytes are judged once a burst is handed to the network: during it, all of it is unsent.
    this.writes = new WriteCoalescer(transport, () => {
      if (this.ws.bufferedAmount > deps.limits.maxUnsentBytes) this.backedUp();
    });
    this.socket = new WatchedSocket(ws, {
      writes: this.writes,
      metrics: deps.metrics,
      onSettled: (address) => this.settled(address),
    });
    const context: SocketContext = { acknowledgements: this.socket, sendStoredContent: (name, updates) => this.sendStoredContent(name, updates) };
    this.client = deps.hocuspocus.handleConnection(this.socket, request as Request, context);
    this.unauthenticatedTimer = setTimeout(() => this.checkAuthenticated(), deps.limits.unauthenticatedTimeoutMs);
    this.unauthenticatedTimer.unref();

    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (this.closing) return;
      if (!isBinary) return this.close(1003, 'bad-frame', 'a text frame; Hocuspocus frames are binary');
      const bytes = new Uint8Array(data as Buffer);
      this.tail = this.tail.then(() => this.receive(bytes)).catch((error) => this.failed(error));
    });
    ws.on('close', (code, reason) => {
      this.closing = true;
      clearTimeout(this.unauthenticatedTimer);
      this.endBacklog();
      this.client.handleClose({ code, reason: reason.toString() });
    });
    ws.on('error', (error) => deps.log.info({ err: error, code: 'socket-error' }, 'WebSocket error'));
  }

  private async receive(bytes: Uint8Array): Promise<void> {
    // A client that does not read its answers gets no more until it has: its requests cannot pile them up in memory.
    if (this.backlog) await this.backlog.settled;
    const { limits } = this.deps;
    const overMessages = (await limits.messages(this.key)) !== null;
    const overBytes = (await limits.bytes(this.key, bytes.length)) !== null;
    if (this.closing) return;
    if (overMessages || overBytes) return this.overBudget(bytes, overMessages ? 'SOCKET_MESSAGES_PER_SECOND' : 'SOCKET_BYTES_PER_SECOND');
    if (this.streak.messages > 0) this.streak = { messages: 0, bytes: 0, told: new Set() };

    let frame;
    try {
      frame = readFrame(bytes);
    } catch (error) {
      if (error instanceof FrameRefusal) return this.malformed(error);
      throw error;
    }
    if (!this.mayQueue(frame.address, frame.type, bytes.length)) return;
    if (frame.token !== undefined) await this.identify(frame.address, frame.token);
    // Keyed by the document's name: Hocuspocus answers a request for `<name>\0<anything>` from the document's connection too.
    const name = frame.address.split('\0')[0]!;
    if (frame.type === MessageType.Auth) this.closedForSyncRequests.delete(name);
    if (this.closedForSyncRequests.has(name)) return;
    const syncKey = `${this.key}\0${name}`;
    if (frame.syncRequest && (await limits.syncRequests(syncKey)) !== null) return this.tooManySyncRequests(frame.address, 'SYNC_REQUESTS_PER_WINDOW');
    const user = frame.syncRequest ? (this.users.get(frame.address) ?? this.users.get(name)) : undefined;
    if (user !== undefined) {
      if ((await limits.userSyncRequests.spend(user)) !== null) return this.tooManySyncRequests(frame.address, 'SYNC_REQUESTS_PER_USER_PER_WINDOW');
      const waiting = this.pending.get(frame.address);
      if (waiting && !waiting.authenticated) waiting.syncRequestsSpent = (waiting.syncRequestsSpent ?? 0) + 1;
    }
    if (frame.syncRequest?.holdsNothing) {
      const waiting = this.pending.get(frame.address);
      if (waiting) waiting.holdsNothing = true;
    }
    // Once the socket is closing (the client's close frame came), documents still authenticating are handed nothing
    // more. Hocuspocus 4.7 drops every document's authentication state when it sets up another on a closing socket; a
    // frame handed after that starts a fresh one, which the authentication under way then takes for its own: a
    // connection without its user. Documents already set up are not affected: an edit sent just before the close is
    // applied and logged (Hocuspocus closes the document once it has to answer on the closing socket).
    if (this.ws.readyState !== this.ws.OPEN && !this.established(frame.address)) return;
    this.client.handleMessage(bytes);
  }

  /**
   * Notes whose the document is, from its token, verified here (Hocuspocus
   * verifies it again): a token that does not verify names nobody, and its
   * document is refused anyway.
   */
  private async identify(address: string, token: string): Promise<void> {
    try {
      const principal = await this.deps.verify(token);
      this.users.set(address, `${principal.tenant}/${principal.userId}`);
    } catch {
      // Hocuspocus's authentication refuses it, with the reason.
    }
  }

  /**
   * Each sync request is answered with all the sender lacks (an empty state
   * vector: the whole document), so past the budget one is not answered and
   * its document is closed; the provider's next connect starts a new sync.
   */
  private tooManySyncRequests(address: string, limit: 'SYNC_REQUESTS_PER_WINDOW' | 'SYNC_REQUESTS_PER_USER_PER_WINDOW'): void {
    const { syncRequestsPerWindow, userSyncRequestsPerWindow, syncWindowSeconds } = this.deps.limits;
    this.limitReached(limit, address);
    const over =
      limit === 'SYNC_REQUESTS_PER_WINDOW'
        ? `more than ${syncRequestsPerWindow} sync requests in ${syncWindowSeconds} s on this document`
        : `more than ${userSyncRequestsPerWindow} sync requests in ${syncWindowSeconds} s by this user`;
    const error = new ConcordError('rate-limited', `${over} (${limit}); the request was not answered and the document was closed`);
    this.send(new OutgoingMessage(address).writeStateless(refusalMessage(error)).toUint8Array());
    this.closedForSyncRequests.add(address.split('\0')[0]!);
    this.closeDocument(address, error);
  }

  /**
   * Sends a document's stored content, as it is read from the log, to one
   * address of this socket that waits for the server to load it: authenticated
   * for it, and asking for everything (an empty state vector: a client that
   * holds nothing, not a provider reconnecting with the document). The
   * client shows it while the server integrates it (for a long history, most
   * of the load). They go as update messages: the provider counts itself
   * synced only at the server's own answer, which repeats the content (Yjs
   * applies what a replica holds as a no-op). Not while the client has a
   * backlog unread.
   */
  private async sendStoredContent(name: string, updates: Uint8Array[]): Promise<void> {
    if (this.closing || this.backlog || this.ws.readyState !== this.ws.OPEN) return;
    const waiting = [...this.pending].find(
      ([address, entry]) => entry.holdsNothing && address.split('\0')[0] === name && this.socket.isOpen(address) && !this.established(address),
    );
    if (!waiting) return;
    this.writes.hold();
    const taken = updates.map((update) => new Promise<void>((resolve) => this.ws.send(updateFrame(waiting[0], update), () => resolve())));
    await within(Promise.all(taken), STORED_CONTENT_WAIT_MS, () => undefined);
  }

  /**
   * Frames for a document still authenticating are buffered by Hocuspocus;
   * past its bounds the socket is closed here, before Hocuspocus does.
   */
  private mayQueue(address: string, type: number, bytes: number): boolean {
    let entry = this.pending.get(address);
    if (!entry) {
      if (this.socket.isOpen(address)) return true;
      entry = { messages: 0, bytes: 0, authenticated: false, authSeen: false };
      this.pending.set(address, entry);
    } else if (entry.authenticated && this.established(address)) {
      this.pending.delete(address);
      return true;
    }
    // As in Hocuspocus: a document's first authentication message is handled, not buffered.
    if (type === MessageType.Auth && !entry.authSeen) {
      entry.authSeen = true;
      return true;
    }
    entry.messages += 1;
    entry.bytes += bytes;
    if (this.withinQueueBounds()) return true;
    // Documents that authenticated and were set up without another frame since are no longer buffered.
    for (const [pendingAddress, { authenticated }] of this.pending) {
      if (authenticated && this.established(pendingAddress)) this.pending.delete(pendingAddress);
    }
    if (this.withinQueueBounds()) return true;
    this.limitReached('UNAUTHENTICATED_QUEUE', address);
    this.close(1008, 'rate-limited', 'too much sent for documents that have not finished authenticating', address);
    return false;
  }

  private withinQueueBounds(): boolean {
    let messages = 0;
    let bytes = 0;
    for (const entry of this.pending.values()) {
      messages += entry.messages;
      bytes += entry.bytes;
    }
    const bounds = unauthenticatedQueue;
    return this.pending.size <= bounds.maxPendingDocuments && messages <= bounds.maxUnauthenticatedQueueMessages && bytes <= bounds.maxUnauthenticatedQueueSize;
  }

  /** True once Hocuspocus has set up the document's connection on this socket (and drained what it buffered). */
  private established(address: string): boolean {
    const name = address.split('\0')[0]!;
    return !!this.deps.hocuspocus.documents.get(name)?.getConnections().some((connection) => connection.webSocket === this.socket);
  }

  private settled(address: string): void {
    const entry = this.pending.get(address);
    if (this.socket.isOpen(address)) {
      if (entry) entry.authenticated = true;
      return;
    }
    // Refused or closed: sync requests queued behind a refused authentication are never answered.
    // A refund lost (Redis away) leaves the points spent: the budget errs on the strict side.
    const user = this.users.get(address);
    if (user !== undefined && entry?.syncRequestsSpent && !entry.authenticated) void this.deps.limits.userSyncRequests.refund(user, entry.syncRequestsSpent).catch(() => {});
    this.users.delete(address);
    this.pending.delete(address);
  }

  /**
   * A message over budget is dropped. A write, a sync step or an
   * authentication needs an answer the client would wait for forever (a
   * dropped write would also leave every later write of that client parked),
   * so then the socket is closed: the provider reconnects after its delay and
   * sends again what the server lacks. Otherwise the document is told once per
   * streak, and a socket that goes on sending while refused is closed.
   */
  private overBudget(bytes: Uint8Array, limit: SocketLimit): void {
    const header = readHeader(bytes);
    this.deps.metrics.limitsReached.inc({ limit });
    this.deps.metrics.refusals.inc({ code: 'rate-limited' });
    const streak = this.streak;
    streak.messages += 1;
    streak.bytes += bytes.length;
    const reason = `over ${limit}`;
    if (!header || ANSWERED.has(header.type)) return this.close(1008, 'rate-limited', `${reason}: a message that needs an answer`, header?.address);
    if (streak.messages >= this.deps.limits.floodMessages || streak.bytes >= this.deps.limits.floodBytes) {
      return this.close(1008, 'rate-limited', `${reason}: still sending after a whole burst was refused`, header.address);
    }
    if (streak.told.has(header.address)) return;
    streak.told.add(header.address);
    this.deps.log.info({ code: 'rate-limited', limit, document: header.address.slice(0, 200) }, 'refused');
    const error = new ConcordError('rate-limited', `this socket sends more than ${limit} allows; the message was dropped`);
    this.send(new OutgoingMessage(header.address).writeStateless(refusalMessage(error)).toUint8Array());
  }

  /** A malformed frame closes its document, or the socket when the frame's document cannot be read. */
  private malformed(error: FrameRefusal): void {
    const { address } = error;
    if (address === undefined) return this.close(error.closeEvent.code, error.code, error.message);
    this.deps.metrics.refusals.inc({ code: error.code });
    this.deps.log.info({ code: error.code, document: address.slice(0, 200), reason: error.message }, 'refused');
    this.closeDocument(address, error);
  }

  /** Closes one document of the socket with the error's code as the reason. */
  private closeDocument(address: string, error: ConcordError): void {
    const name = address.split('\0')[0]!;
    const connection = this.deps.hocuspocus.documents
      .get(name)
      ?.getConnections()
      .find((open) => open.webSocket === this.socket && open.messageAddress === address);
    // Hocuspocus sends the close message and forgets the document's connection.
    if (connection) return connection.close(error.closeEvent);
    this.send(new OutgoingMessage(address).writeCloseMessage(error.code).toUint8Array());
  }

  private checkAuthenticated(): void {
    this.unauthenticatedTimer = undefined;
    if (this.closing || this.socket.authenticated) return;
    this.limitReached('UNAUTHENTICATED_TIMEOUT_MS');
    this.close(1008, 'rate-limited', `no document authenticated within ${this.deps.limits.unauthenticatedTimeoutMs} ms`);
  }

  /**
   * What the client has not read waits in the server's memory. Past
   * SOCKET_UNSENT_MAX_BYTES the socket is no longer read (its frames wait, and
   * TCP holds the client back) until the client has read below the bound. A
   * client that reads nothing for SOCKET_STALL_TIMEOUT_MS is cut: a close
   * message would wait behind what is unread (its provider reconnects and syncs).
   */
  private backedUp(): void {
    if (this.backlog || this.closing) return;
    const { maxUnsentBytes, stallTimeoutMs } = this.deps.limits;
    let least = this.ws.bufferedAmount;
    let readAt = performance.now();
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setInterval(() => {
      const unsent = this.ws.bufferedAmount;
      if (unsent <= maxUnsentBytes) return this.endBacklog();
      if (unsent < least) [least, readAt] = [unsent, performance.now()];
      if (performance.now() - readAt < stallTimeoutMs) return;
      this.closing = true;
      this.endBacklog();
      this.limitReached('SOCKET_UNSENT_MAX_BYTES');
      this.ws.terminate();
    }, BACKLOG_CHECK_MS);
    timer.unref();
    this.backlog = { settled: promise, settle: resolve, timer };
    this.ws.pause();
  }

  private endBacklog(): void {
    if (!this.backlog) return;
    clearInterval(this.backlog.timer);
    this.backlog.settle();
    this.backlog = null;
    // Also when closing: the client's close message must be read (frames are ignored by then).
    this.ws.resume();
  }

  private limitReached(limit: SocketLimit, document?: string): void {
    this.deps.metrics.limitsReached.inc({ limit });
    this.deps.metrics.refusals.inc({ code: 'rate-limited' });
    this.deps.log.info({ code: 'rate-limited', limit, document: document?.slice(0, 200) }, 'limit reached');
  }

  /** Closes the whole socket (Hocuspocus closes its documents when the socket's close event follows). */
  private close(code: number, reason: string, why: string, document?: string): void {
    if (this.closing) return;
    this.closing = true;
    this.endBacklog();
    if (reason !== 'rate-limited') this.deps.metrics.refusals.inc({ code: reason });
    this.deps.log.info({ code: reason, closeCode: code, document: document?.slice(0, 200), reason: why }, 'socket closed');
    this.ws.close(code, reason);
  }

  private send(frame: Uint8Array): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.writes.hold();
    this.ws.send(frame);
  }

  private failed(error: unknown): void {
    this.deps.log.error({ err: error, code: 'internal' }, 'a socket message could not be handled');
    this.close(1011, 'internal', 'internal error');
  }
}
