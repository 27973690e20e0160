import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import type { Database } from '../db/database.ts';
import { readEvents } from '../db/events.ts';
import { advanceSubscription, leaseSubscription, releaseSubscription } from '../db/subscriptions.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { within } from '../timeouts.ts';
import { envelope, type ChangeEvent } from './event.ts';
import type { EventWriter } from './writer.ts';

/** The row of event_subscriptions that holds NATS's place in each tenant's feed. */
const SUBSCRIPTION = 'nats';
/** One instance at a time publishes a tenant's events; a dead one's lease lapses after this (renewed every batch, and while one is published). */
const LEASE_MS = 10_000;
/** Events read and published per round (and per lease renewal). */
const BATCH_EVENTS = 500;
/** How long one publish waits for JetStream's acknowledgement. */
const PUBLISH_TIMEOUT_MS = 5_000;
/** How long a first connection attempt (and a readiness probe) waits for the server. */
const CONNECT_TIMEOUT_MS = 5_000;
const PROBE_TIMEOUT_MS = 2_000;
/** Room left in the server's max_payload for the headers (Nats-Msg-Id). */
const HEADER_ROOM_BYTES = 1024;
/** NATS's default max_payload, until the server says its own. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
const FIRST_RETRY_MS = 250;
const LONGEST_RETRY_MS = 30_000;

export interface NatsPublisherOptions {
  /** NATS_URL: the servers to connect to. */
  servers: string[];
  /** NATS_USER and NATS_PASSWORD, or NATS_TOKEN. */
  credentials: { user?: string; pass?: string; token?: string };
  /** NATS_STREAM: the JetStream stream, created over `concord.>` when missing. */
  stream: string;
  db: Database;
  /** The tenants whose feed is ahead of subscription `nats` (a read across tenants, as the owner). */
  tenantsBehind(): Promise<string[]>;
  /** Wakes the tenant's publishing at once when this instance commits its events. */
  writer: EventWriter;
  /** The lease owner: this instance. */
  instance: string;
  /** How often to look for events other instances committed (EVENTS_POLL_MS). */
  pollMs: number;
  log: Logger;
  metrics: Metrics;
}

/** Where an event goes: `concord.<tenant>.<kind>.<id>.<type>` (tenants and ids are valid subject tokens: idPattern). */
export function natsSubject(event: ChangeEvent): string {
  return `concord.${event.tenant}.${event.document.kind}.${event.document.id}.${event.type}`;
}

/**
 * The message of an event: its envelope JSON, or, when that is more than the
 * server takes (max_payload, 1 MB by default: a long text pasted, say), the
 * envelope with `data: null` and `truncated: true` (the whole event is in the
 * feed) rather than an event that could never be published and would hold up
 * every one after it.
 */
export function natsPayload(event: ChangeEvent, maxBytes: number): string {
  const whole = JSON.stringify(event);
  return Buffer.byteLength(whole) <= maxBytes ? whole : JSON.stringify({ ...event, data: null, truncated: true });
}

/**
 * Publishes every change event to JetStream (NATS_URL), at least once and in
 * order per document. Per tenant, the instance holding subscription `nats`'s
 * lease reads the events after its position, publishes them with
 * `Nats-Msg-Id` = the event id (JetStream drops a repeat within the stream's
 * duplicate window), and moves the position only over events JetStream
 * acknowledged: a batch at a time, in feed order, so the stream holds each
 * document's events in seq order (see publish). NATS or Postgres down:
 * publishing stops, and is retried with growing backoff from the position,
 * losing nothing.
 */
export class NatsPublisher {
  private readonly options: NatsPublisherOptions;
  private connection: NatsConnection | null = null;
  private connecting: Promise<JetStreamClient> | null = null;
  private connected = false;
  /** The stream was found or created since the connection (re)opened. */
  private streamReady = false;
  /** Per tenant being published: a drain under way, and whether it must run again when done. */
  private readonly draining = new Map<string, Promise<void>>();
  private readonly drainAgain = new Set<string>();
  /** Tenants whose lease this instance may hold: released at close. */
  private readonly leased = new Set<string>();
  /** Per tenant: events past its position that JetStream acknowledged (id to position), not sent again on a retry. */
  private readonly acknowledged = new Map<string, Map<string, number>>();
  private polling = false;
  private failures = 0;
  private retryAt = 0;
  private pollTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: NatsPublisherOptions) {
    this.options = options;
  }

  start(): void {
    this.options.writer.on('committed', this.wake);
    this.pollTimer = setInterval(() => void this.poll(), this.options.pollMs).unref();
    void this.poll();
  }

  /** For /readyz: resolves while NATS answers and the stream is set up. */
  async check(): Promise<void> {
    const connection = this.connection;
    if (!connection || !this.connected) throw new Error('NATS is not connected');
    if (!this.streamReady) throw new Error(`the JetStream stream ${this.options.stream} is not set up`);
    await within(connection.rtt(), PROBE_TIMEOUT_MS, () => {
      throw new Error('NATS does not answer');
    });
  }

  /** Stops publishing, lets the batches under way end (bounded by the publish timeout), releases the leases and disconnects. */
  async close(): Promise<void> {
    this.closed = true;
    this.options.writer.off('committed', this.wake);
    clearInterval(this.pollTimer);
    clearTimeout(this.retryTimer);
    await Promise.allSettled([...this.draining.values(), this.connecting]);
    const { db, instance } = this.options;
    await Promise.allSettled([...this.leased].map((tenant) => db.transaction(tenant, (sql) => releaseSubscription(sql, SUBSCRIPTION, instance))));
    await this.connection?.close();
  }

  /** Publishes the tenant's events now, or once the round under way ends. */
  private readonly wake = (tenant: string): void => {
    if (this.closed || Date.now() < this.retryAt) return;
    if (this.draining.has(tenant)) {
      this.drainAgain.add(tenant);
      return;
    }
    const drain = this.drain(tenant)
      .then(
        () => void (this.failures = 0),
        (error) => this.failed(error, tenant),
      )
      .finally(() => {
        this.draining.delete(tenant);
        if (this.drainAgain.delete(tenant)) this.wake(tenant);
      });
    this.draining.set(tenant, drain);
  };

  /** Finds the tenants other instances (or an earlier failure) left behind. */
  private async poll(): Promise<void> {
    if (this.closed || this.polling || Date.now() < this.retryAt) return;
    this.polling = true;
    try {
      await this.jetstream();
      for (const tenant of await this.options.tenantsBehind()) this.wake(tenant);
    } catch (error) {
      this.failed(error);
    } finally {
      this.polling = false;
    }
  }

  /** Publishes the tenant's events after its position, batch by batch, while this instance holds the lease. */
  private async drain(tenant: string): Promise<void> {
    const { db, instance } = this.options;
    const js = await this.jetstream();
    while (!this.closed) {
      const batch = await db.transaction(tenant, async (sql) => {
        const position = await leaseSubscription(sql, SUBSCRIPTION, instance, LEASE_MS);
        return position === null ? null : { position, events: (await readEvents(sql, { after: position, limit: BATCH_EVENTS })).map(envelope) };
      });
      // Another instance holds the lease: it publishes this tenant.
      if (!batch) return;
      this.leased.add(tenant);
      if (batch.events.length === 0) return;
      const { through, failure } = await this.whileLeased(tenant, () => this.publish(js, tenant, batch.position, batch.events));
      // A lost lease (this instance was too slow): the new holder goes on from the position, which this one no longer moves.
      if (through > batch.position && !(await db.transaction(tenant, (sql) => advanceSubscription(sql, SUBSCRIPTION, instance, through)))) return;
      if (failure) throw failure;
      if (batch.events.length < BATCH_EVENTS) return;
    }
  }

  /** Runs `work` renewing the tenant's lease meanwhile (a batch waiting on a slow NATS may take longer than a lease). */
  private async whileLeased<T>(tenant: string, work: () => Promise<T>): Promise<T> {
    const { db, instance } = this.options;
    const renew = () => db.transaction(tenant, (sql) => leaseSubscription(sql, SUBSCRIPTION, instance, LEASE_MS)).catch(() => null);
    const renewal = setInterval(() => void renew(), LEASE_MS / 3);
    try {
      return await work();
    } finally {
      clearInterval(renewal);
    }
  }

  /**
   * Publishes a batch, all at once in feed order, and answers the position
   * every event up to which JetStream acknowledged, with the first failure if
   * any. One connection carries them in that order and JetStream stores them
   * in the order they arrive; a lost connection loses the rest of what was
   * sent (the client drops its unsent buffer when it dials again), so what is
   * stored of a batch is a prefix, and a retry from the first unacknowledged
   * event keeps each document's events in seq order (the stored ones come
   * back as duplicates).
   */
  private async publish(js: JetStreamClient, tenant: string, position: number, events: ChangeEvent[]): Promise<{ through: number; failure?: unknown }> {
    const { metrics } = this.options;
    const acknowledged = this.acknowledged.get(tenant) ?? new Map<string, number>();
    this.acknowledged.set(tenant, acknowledged);
    const maxBytes = (this.connection?.info?.max_payload ?? DEFAULT_MAX_PAYLOAD) - HEADER_ROOM_BYTES;
    const results = await Promise.allSettled(
      events
        .filter((event) => !acknowledged.has(event.id))
        .map(async (event) => {
          const ack = await js.publish(natsSubject(event), natsPayload(event, maxBytes), { msgID: event.id, timeout: PUBLISH_TIMEOUT_MS });
          acknowledged.set(event.id, event.position);
          metrics.natsPublished.inc({ result: ack.duplicate ? 'duplicate' : 'stored' });
          metrics.natsLag.observe((Date.now() - Date.parse(event.occurredAt)) / 1000);
        }),
    );
    const missing = events.findIndex((event) => !acknowledged.has(event.id));
    const through = missing === -1 ? events.at(-1)!.position : missing === 0 ? position : events[missing - 1]!.position;
    for (const [id, at] of acknowledged) if (at <= through) acknowledged.delete(id);
    if (acknowledged.size === 0) this.acknowledged.delete(tenant);
    return { through, failure: results.find((result) => result.status === 'rejected')?.reason };
  }

  /** The JetStream client, once connected and the stream is there; throws while NATS is away. */
  private jetstream(): Promise<JetStreamClient> {
    this.connecting ??= this.prepare().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async prepare(): Promise<JetStreamClient> {
    if (this.connection?.isClosed()) this.connection = null;
    // Once connected, the client reconnects by itself (forever); only a first connection is retried here.
    this.connection ??= await this.connect();
    if (!this.connected) throw new Error('NATS is not connected');
    if (!this.streamReady) {
      await this.ensureStream(this.connection);
      this.streamReady = true;
    }
    return jetstream(this.connection, { timeout: PUBLISH_TIMEOUT_MS });
  }

  private async connect(): Promise<NatsConnection> {
    const { servers, credentials, instance, log } = this.options;
    const connection = await connect({ servers, ...credentials, name: `concord ${instance}`, maxReconnectAttempts: -1, reconnectTimeWait: 1_000, timeout: CONNECT_TIMEOUT_MS });
    this.connected = true;
    log.info({ code: 'nats-connected', server: connection.getServer() }, 'connected to NATS');
    void this.follow(connection);
    return connection;
  }

  /** Tracks the connection: publishing pauses while it is away and resumes, stream checked again, when it is back. */
  private async follow(connection: NatsConnection): Promise<void> {
    const { log } = this.options;
    for await (const status of connection.status()) {
      if (status.type === 'disconnect') {
        this.connected = false;
        this.streamReady = false;
        log.warn({ code: 'nats-disconnected', server: status.server }, 'NATS connection lost; publishing waits for it');
      } else if (status.type === 'reconnect') {
        this.connected = true;
        log.info({ code: 'nats-reconnected', server: status.server }, 'NATS connection back');
        this.retryAt = 0;
        void this.poll();
      }
    }
    this.connected = false;
  }

  /** Creates the stream over `concord.>` when it is missing; one that exists is left as its operators configured it. */
  private async ensureStream(connection: NatsConnection): Promise<void> {
    const { stream, log } = this.options;
    const manager = await jetstreamManager(connection, { timeout: PUBLISH_TIMEOUT_MS });
    try {
      await manager.streams.info(stream);
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
      await manager.streams.add({ name: stream, subjects: ['concord.>'] });
      log.info({ code: 'nats-stream-created', stream }, `created the JetStream stream ${stream} over concord.>`);
    }
  }

  /** Backs off (with jitter) before anything is tried again; the poll after it picks up every tenant left behind. */
  private failed(error: unknown, tenant?: string): void {
    if (this.closed) return;
    if (Date.now() >= this.retryAt) this.failures += 1;
    const delay = Math.round(Math.min(LONGEST_RETRY_MS, FIRST_RETRY_MS * 2 ** (this.failures - 1)) * (0.5 + Math.random() / 2));
    this.retryAt = Date.now() + delay;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.poll(), delay).unref();
    this.options.log.warn({ err: error, code: 'nats-publish-failed', tenant, retryInMs: delay }, `publishing events to NATS failed; retrying in ${delay} ms`);
  }
}
