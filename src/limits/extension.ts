import type {
  afterHandleMessagePayload,
  beforeHandleAwarenessPayload,
  beforeHandleMessagePayload,
  Connection,
  connectedPayload,
  Extension,
  onAuthenticatePayload,
  onDisconnectPayload,
} from '@hocuspocus/server';
import { refusalMessage } from '../auth/write-refusals.ts';
import type { TokenVerifier } from '../auth/tokens.ts';
import type { Redis } from '../cluster/redis.ts';
import type { Config } from '../config.ts';
import { ConcordError, HookRefusal, hookRefusal } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { readFrame } from '../protocol.ts';
import { ConnectionCounts, type Owner } from './connection-counts.ts';
import { HeldAwareness } from './held-awareness.ts';
import { createLimiter, type Spend } from './limiter.ts';

// A place taken at authentication is confirmed when the connection is set up;
// one never confirmed (the document failed to load: Hocuspocus has no hook
// for that) is given back after this long. A load slower than that (a storage
// outage) leaves its connection uncounted, never a place held for nothing.
const UNCONFIRMED_PLACE_MS = 120_000;
// The burst of AWARENESS_UPDATES_BURST comes back over this many seconds.
const AWARENESS_BURST_SECONDS = 10;
// A client past a rate is told again at most this often.
const TELL_AGAIN_MS = 1_000;

type LimitSettings = Pick<
  Config,
  | 'AWARENESS_UPDATES_PER_SECOND'
  | 'AWARENESS_UPDATES_BURST'
  | 'AWARENESS_STATE_MAX_BYTES'
  | 'MAX_DOCUMENTS_PER_SOCKET'
  | 'MAX_CONNECTIONS_PER_USER'
  | 'MAX_CONNECTIONS_PER_TENANT'
>;

export interface LimitsConfiguration {
  /** The bounds (see config.ts). */
  settings: LimitSettings;
  /**
   * Who a connection is for. Hocuspocus hands every onAuthenticate hook the
   * context as it was before the chain, so the principal Authorization found
   * is not visible here: the token (already verified by then) is verified again.
   */
  verify: TokenVerifier;
  /** With Redis, connections per user and per tenant are counted for the whole cluster. */
  redis: Redis | null;
  /** This instance's identity: its connections' members in Redis carry it. */
  instance: string;
  log: Logger;
  metrics: Metrics;
}

/** What Limits adds to a connection's context at authentication. */
interface LimitsContext {
  place?: Place;
}

/** One document connection's share of the counts, given back once. */
interface Place {
  socketId: string;
  member: string;
  confirmed: boolean;
  released: boolean;
}

/**
 * The per-connection limits (docs/configuration.md) that Hocuspocus leaves open,
 * each refused with `rate-limited` and counted under its setting's name:
 *
 * - at authentication (the provider's `authenticationFailed`): documents open
 *   per socket, and connections (open documents) per user and per tenant,
 *   for the whole cluster when Redis is configured;
 * - per message, before Hocuspocus applies or relays it (stateless
 *   `concord:refused`; the connection carries on): bytes per awareness state
 *   (dropped), and awareness updates per second with a burst. The rate is
 *   spent one update per 1/AWARENESS_UPDATES_PER_SECOND s, so a cursor moving
 *   faster is held back by that much at most, not for the rest of a second;
 *   an update past it is held, the latest of the connection going once the
 *   rate allows (see HeldAwareness).
 *
 * Sync requests per window are bounded by the socket (socket/session.ts),
 * which can leave a request unanswered without an exception in Hocuspocus.
 */
export class Limits implements Extension {
  extensionName = 'concord-limits';

  configuration: LimitsConfiguration;

  private readonly connections: ConnectionCounts;
  private readonly documentsPerSocket = new Map<string, number>();
  private readonly awarenessRate: Spend;
  private readonly awarenessBurst: Spend;
  private readonly held = new HeldAwareness(() => this.counted('AWARENESS_UPDATES_PER_SECOND'));
  /** Connections whose awareness message being handled is dropped. */
  private readonly dropping = new WeakSet<Connection>();
  /** Per connection and limit: until when it is not told again about a rate it keeps passing. */
  private readonly toldUntil = new WeakMap<Connection, Map<string, number>>();

  constructor(configuration: LimitsConfiguration) {
    this.configuration = configuration;
    const { settings, redis, instance } = configuration;
    this.connections = new ConnectionCounts(redis, instance, {
      perUser: settings.MAX_CONNECTIONS_PER_USER,
      perTenant: settings.MAX_CONNECTIONS_PER_TENANT,
    });
    // Per connection: kept in this instance's memory.
    this.awarenessRate = createLimiter(
      { name: 'AWARENESS_UPDATES_PER_SECOND', points: 1, durationSeconds: 1 / settings.AWARENESS_UPDATES_PER_SECOND },
      null,
    );
    this.awarenessBurst = createLimiter(
      { name: 'AWARENESS_UPDATES_BURST', points: settings.AWARENESS_UPDATES_BURST, durationSeconds: AWARENESS_BURST_SECONDS },
      null,
    );
  }

  /** Runs after Authorization's: a refused token never takes a place. */
  async onAuthenticate({ token, socketId, documentName }: onAuthenticatePayload): Promise<LimitsContext> {
    const { settings } = this.configuration;
    const principal = await this.configuration.verify(token);
    const open = this.documentsPerSocket.get(socketId) ?? 0;
    if (open >= settings.MAX_DOCUMENTS_PER_SOCKET) {
      throw this.refusedAtConnect(
        'MAX_DOCUMENTS_PER_SOCKET',
        documentName,
        principal,
        `this socket has ${open} documents open, the most one socket may (MAX_DOCUMENTS_PER_SOCKET); close one first`,
      );
    }
    // Counted before waiting for Redis, so that documents authenticating together on one socket see each other.
    this.documentsPerSocket.set(socketId, open + 1);
    const taken = await this.connections.take(principal);
    if ('full' in taken) {
      this.documentLeftSocket(socketId);
      const whose = taken.full === 'MAX_CONNECTIONS_PER_USER' ? `user "${principal.userId}"` : `tenant "${principal.tenant}"`;
      const bound = taken.full === 'MAX_CONNECTIONS_PER_USER' ? settings.MAX_CONNECTIONS_PER_USER : settings.MAX_CONNECTIONS_PER_TENANT;
      throw this.refusedAtConnect(taken.full, documentName, principal, `${whose} has ${bound} documents open, the most allowed (${taken.full}); close one first`);
    }
    const place: Place = { socketId, member: taken.member, confirmed: false, released: false };
    setTimeout(() => place.confirmed || this.release(place), UNCONFIRMED_PLACE_MS).unref();
    return { place };
  }

  async connected({ context }: connectedPayload<LimitsContext>): Promise<void> {
    if (context.place) context.place.confirmed = true;
  }

  async onDisconnect({ context }: onDisconnectPayload): Promise<void> {
    const { place } = context as LimitsContext;
    if (place) this.release(place);
  }

  /** Decides on the raw frame, before any extension or Hocuspocus reads its content. */
  async beforeHandleMessage({ connection, update }: beforeHandleMessagePayload): Promise<void> {
    // Read (and validated) once by the socket before Hocuspocus handled it: this is the cached reading.
    const { largestAwarenessState, address } = readFrame(update);
    const { settings } = this.configuration;
    if (largestAwarenessState === undefined) return;
    if (largestAwarenessState > settings.AWARENESS_STATE_MAX_BYTES) {
      this.dropping.add(connection);
      const error = new ConcordError(
        'rate-limited',
        `an awareness state of ${largestAwarenessState} bytes is over AWARENESS_STATE_MAX_BYTES (${settings.AWARENESS_STATE_MAX_BYTES}); the update was not applied or relayed`,
      );
      this.counted('AWARENESS_STATE_MAX_BYTES');
      this.tell(connection, 'AWARENESS_STATE_MAX_BYTES', error, 0);
      return;
    }
    // Per connection: a socket may open one document more than once (its address then names the session too).
    const wait = await this.spendAwareness(`${connection.socketId}\0${address}`);
    if (wait === null) return;
    this.dropping.add(connection);
    // Counted (by `held`) when dropped for good, not when held: a held update handled again too early is held again.
    this.held.hold(connection, update, wait);
    const error = new ConcordError(
      'rate-limited',
      `more than ${settings.AWARENESS_UPDATES_PER_SECOND} awareness updates per second (AWARENESS_UPDATES_PER_SECOND, with a burst of ${settings.AWARENESS_UPDATES_BURST} per ${AWARENESS_BURST_SECONDS} s); the latest update is held and applied once the rate allows, in ${wait} ms, and those before it are dropped`,
    );
    this.tell(connection, 'AWARENESS_UPDATES_PER_SECOND', error, Math.max(wait, TELL_AGAIN_MS));
  }

  /** A dropped awareness message changes nothing: Hocuspocus applies and relays what is left in `states`. */
  async beforeHandleAwareness({ connection, states }: beforeHandleAwarenessPayload): Promise<void> {
    if (connection && this.dropping.has(connection)) states.clear();
  }

  async afterHandleMessage({ connection }: afterHandleMessagePayload): Promise<void> {
    this.dropping.delete(connection);
  }

  /** Stops renewing this instance's connections in Redis (they expire there). */
  close(): void {
    this.connections.close();
    this.held.close();
  }

  /** The rate first; past it, the burst (rate-limiter-flexible's BurstyRateLimiter, over Spend). */
  private async spendAwareness(key: string): Promise<number | null> {
    const rateWait = await this.awarenessRate(key);
    if (rateWait === null) return null;
    const burstWait = await this.awarenessBurst(key);
    return burstWait === null ? null : Math.min(rateWait, burstWait);
  }

  private release(place: Place): void {
    if (place.released) return;
    place.released = true;
    this.documentLeftSocket(place.socketId);
    this.connections.release(place.member);
  }

  private documentLeftSocket(socketId: string): void {
    const open = (this.documentsPerSocket.get(socketId) ?? 0) - 1;
    if (open > 0) this.documentsPerSocket.set(socketId, open);
    else this.documentsPerSocket.delete(socketId);
  }

  /** Logged here; thrown as a HookRefusal, which Hocuspocus passes on as the reason without printing it. */
  private refusedAtConnect(limit: string, documentName: string, owner: Owner, message: string): HookRefusal {
    const error = new ConcordError('rate-limited', message);
    this.counted(limit);
    this.configuration.log.info({ code: error.code, limit, document: documentName.slice(0, 200), userId: owner.userId, tenant: owner.tenant, reason: message }, 'refused');
    return hookRefusal(error);
  }

  /** Tells the client (stateless) and logs, once per `quietMs`, so that a flood is not answered message by message. */
  private tell(connection: Connection, limit: string, error: ConcordError, quietMs: number): void {
    const now = Date.now();
    const told = this.toldUntil.get(connection) ?? new Map<string, number>();
    this.toldUntil.set(connection, told);
    if (now < (told.get(limit) ?? 0)) return;
    told.set(limit, now + quietMs);
    connection.sendStateless(refusalMessage(error));
    this.configuration.log.info({ code: error.code, limit, document: connection.document.name.slice(0, 200), reason: error.message }, 'refused');
  }

  /** Counts a connection or message refused (for good). */
  private counted(limit: string): void {
    this.configuration.metrics.limitsReached.inc({ limit });
    this.configuration.metrics.refusals.inc({ code: 'rate-limited' });
  }
}
