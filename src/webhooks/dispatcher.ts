import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { Webhook } from 'standardwebhooks';
import type { Config } from '../config.ts';
import type { Database, OwnerDatabase, Sql } from '../db/database.ts';
import { feedState, readEvents } from '../db/events.ts';
import { advanceSubscription, leaseSubscription, releaseSubscription } from '../db/subscriptions.ts';
import {
  deleteSubscription,
  dueDeliveries,
  endpointById,
  endpointsWithWork,
  eventsByIds,
  insertDeliveries,
  listEndpoints,
  lockSubscription,
  pendingDeliveryCount,
  pruneDeliveriesBefore,
  recordDead,
  recordDelivered,
  recordRetry,
  type DueDelivery,
  type EndpointRow,
  type NewDelivery,
} from '../db/webhooks.ts';
import type { EventRow } from '../db/events.ts';
import { envelope, type ChangeEvent } from '../events/event.ts';
import type { EventWriterEvents } from '../events/writer.ts';
import type { Logger } from '../log.ts';
import { Periodic, RETENTION_EVERY_MS, retentionCutoff } from '../maintenance.ts';
import type { Metrics } from '../metrics.ts';
import { sendOnce, type Attempt } from './sender.ts';

/** Most events one delivery carries. */
export const MAX_EVENTS_PER_DELIVERY = 100;
/** Most events read from the feed in one claim. */
const CLAIM_EVENTS = 1000;
/**
 * While requests are under way, new events are claimed at most this often: a
 * busy document's events then gather into fewer, larger deliveries instead of
 * a queue of small ones sent one after another (an idle endpoint claims at once).
 */
const BUSY_CLAIM_INTERVAL_MS = 100;
/** A subscription lease: renewed every third of it while its worker runs; after a crash another instance waits at most this long. */
const LEASE_MS = 15_000;
/** Each retry waits its scheduled delay less up to this fraction (jitter: retries of many deliveries spread out). */
const JITTER = 0.2;

export type WebhookSettings = Pick<
  Config,
  | 'EVENTS_POLL_MS'
  | 'WEBHOOK_ALLOW_PRIVATE'
  | 'WEBHOOK_TIMEOUT_MS'
  | 'WEBHOOK_CONCURRENCY'
  | 'WEBHOOK_RETRY_SCHEDULE'
  | 'WEBHOOK_DISABLE_AFTER'
  | 'WEBHOOK_MAX_PENDING'
  | 'EVENTS_RETENTION_DAYS'
>;

export interface DispatcherOptions {
  db: Database;
  /** For the poll across tenants and pruning the log. */
  owner: OwnerDatabase;
  /** Emits `committed` with the tenant after each commit that wrote events. */
  events: EventEmitter<EventWriterEvents>;
  /** This instance's name: the owner of the leases it takes. */
  instance: string;
  settings: WebhookSettings;
  log: Logger;
  metrics: Metrics;
}

/** The subscription (schema/009) through which endpoint `id` reads its tenant's feed. */
export function subscriptionOf(endpointId: string): string {
  return `webhook:${endpointId}`;
}

/**
 * Sends each tenant's change events to its webhook endpoints. An endpoint is
 * worked on by one instance at a time (its subscription's lease): this one
 * starts a worker for it when a commit here wrote events for its tenant, and
 * every EVENTS_POLL_MS for endpoints with work that no instance holds (events
 * other instances committed, retries come due, a crashed holder's lease ran
 * out). A worker ends, releasing the lease, when nothing is left to do now.
 */
export class WebhookDispatcher {
  private readonly options: DispatcherOptions;
  private readonly workers = new Map<string, EndpointWorker>();
  /** Each tenant's enabled endpoints as last listed, and when: commits list them again at most every EVENTS_POLL_MS. */
  private readonly endpointsOf = new Map<string, { ids: string[]; listedAt: number }>();
  /** Tenants whose endpoints are being listed after a commit, and whether another commit came meanwhile. */
  private readonly listing = new Map<string, boolean>();
  /** The delivery log is kept as long as the events it names (EVENTS_RETENTION_DAYS). */
  private readonly logPruning = new Periodic(RETENTION_EVERY_MS, () => this.pruneLog());
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = false;

  constructor(options: DispatcherOptions) {
    this.options = options;
  }

  start(): void {
    this.options.events.on('committed', this.onCommitted);
    this.timer = setInterval(() => void this.poll(), this.options.settings.EVENTS_POLL_MS).unref();
    void this.poll();
    this.logPruning.start();
  }

  /** Starts no more work, cuts off requests under way (they are sent again) and releases the leases. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.options.events.off('committed', this.onCommitted);
    await Promise.all([this.logPruning.stop(), ...[...this.workers.values()].map((worker) => worker.stop())]);
  }

  private async pruneLog(): Promise<void> {
    try {
      const deleted = await this.options.owner.transaction((sql) => pruneDeliveriesBefore(sql, retentionCutoff(this.options.settings.EVENTS_RETENTION_DAYS)));
      if (deleted > 0) this.options.log.info({ code: 'webhook-log-retention', deleted }, 'pruned old webhook deliveries from the log');
    } catch (error) {
      this.options.log.error({ err: error, code: 'webhook-log-prune-failed' }, 'pruning the webhook delivery log failed; retrying in an hour');
    }
  }

  private readonly onCommitted = (tenant: string): void => {
    const listed = this.endpointsOf.get(tenant);
    if (listed && Date.now() - listed.listedAt < this.options.settings.EVENTS_POLL_MS) return listed.ids.forEach((id) => this.work(tenant, id));
    if (this.listing.has(tenant)) return void this.listing.set(tenant, true);
    this.listing.set(tenant, false);
    this.options.db
      .transaction(tenant, listEndpoints)
      .then(
        (endpoints) => {
          const ids = endpoints.filter((endpoint) => endpoint.enabled).map((endpoint) => endpoint.id);
          this.endpointsOf.set(tenant, { ids, listedAt: Date.now() });
          ids.forEach((id) => this.work(tenant, id));
        },
        (error) => this.options.log.warn({ err: error, code: 'webhook-wake-failed', tenant }, 'listing webhook endpoints failed; the next poll finds the work'),
      )
      .finally(() => {
        const again = this.listing.get(tenant);
        this.listing.delete(tenant);
        if (again) this.onCommitted(tenant);
      });
  };

  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    for (const [tenant, { listedAt }] of this.endpointsOf) if (Date.now() - listedAt >= this.options.settings.EVENTS_POLL_MS) this.endpointsOf.delete(tenant);
    try {
      const { instance, settings } = this.options;
      const endpoints = await this.options.owner.transaction((sql) => endpointsWithWork(sql, instance, settings.WEBHOOK_MAX_PENDING));
      for (const { tenant_id, id } of endpoints) this.work(tenant_id, id);
    } catch (error) {
      this.options.log.warn({ err: error, code: 'webhook-poll-failed' }, 'looking for webhook work failed; trying again');
    } finally {
      this.polling = false;
    }
  }

  private work(tenant: string, endpointId: string): void {
    if (this.stopped) return;
    const key = `${tenant}/${endpointId}`;
    const running = this.workers.get(key);
    if (running) return running.wake();
    const worker = new EndpointWorker(tenant, endpointId, this.options);
    this.workers.set(key, worker);
    void worker.run().finally(() => {
      this.workers.delete(key);
      // Woken after it decided there was nothing left: go again rather than wait for the poll.
      if (worker.wokenAtEnd) this.work(tenant, endpointId);
    });
  }
}

/**
 * One endpoint's work while this instance holds its lease: claims the events
 * past its subscription as delivery rows, and sends the oldest pending
 * delivery of up to WEBHOOK_CONCURRENCY documents at once.
 */
class EndpointWorker {
  private readonly tenant: string;
  private readonly endpointId: string;
  private readonly subscription: string;
  private readonly options: DispatcherOptions;
  /** Documents with a request under way, and the request. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private woken = false;
  private resolveWake: (() => void) | null = null;
  /** Cuts off requests under way when the server stops: they stay pending, and are sent again (at least once). */
  private readonly shutdown = new AbortController();
  private ended = false;
  private stopping = false;
  private leaseLost = false;
  private running: Promise<void> | null = null;
  private lastClaimAt = 0;
  /** Waiting out BUSY_CLAIM_INTERVAL_MS: commits do not wake it, ended requests do. */
  private claimsPutOff = false;

  constructor(tenant: string, endpointId: string, options: DispatcherOptions) {
    this.tenant = tenant;
    this.endpointId = endpointId;
    this.subscription = subscriptionOf(endpointId);
    this.options = options;
  }

  /** Whether it was woken after it had finished (there may be new work). */
  get wokenAtEnd(): boolean {
    return this.ended && this.woken;
  }

  /** New events (a commit, a poll): claimed at once, or with the next claim when claims are put off. */
  wake(): void {
    this.woken = true;
    if (!this.claimsPutOff) this.resolveWake?.();
  }

  /** A request ended, or the work must stop: go on at once. */
  private resume(): void {
    this.woken = true;
    this.resolveWake?.();
  }

  run(): Promise<void> {
    this.running = this.work().catch((error) =>
      this.options.log.warn({ err: error, code: 'webhook-worker-failed', tenant: this.tenant, endpoint: this.endpointId }, 'webhook worker stopped; the next poll resumes'),
    );
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.shutdown.abort();
    this.resume();
    await this.running;
  }

  private transaction<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
    return this.options.db.transaction(this.tenant, work);
  }

  private async work(): Promise<void> {
    const { instance } = this.options;
    const leased = await this.transaction((sql) => leaseSubscription(sql, this.subscription, instance, LEASE_MS));
    if (leased === null) return void (this.ended = true);
    const renewal = setInterval(() => void this.renew(), LEASE_MS / 3);
    let removed = false;
    try {
      for (;;) {
        this.woken = false;
        const endpoint = await this.transaction((sql) => endpointById(sql, this.endpointId));
        removed = endpoint === null;
        if (this.stopping || this.leaseLost || !endpoint?.enabled) break;
        const claimNow = this.inFlight.size === 0 || Date.now() - this.lastClaimAt >= BUSY_CLAIM_INTERVAL_MS;
        const claimed = claimNow ? await this.claim(endpoint) : 0;
        const started = this.leaseLost ? 0 : await this.sendDue(endpoint);
        if (claimed > 0 || started > 0) continue;
        if (this.inFlight.size === 0 && !this.woken) break;
        await this.nextWake(claimNow ? undefined : BUSY_CLAIM_INTERVAL_MS - (Date.now() - this.lastClaimAt));
      }
    } finally {
      clearInterval(renewal);
      await Promise.all(this.inFlight.values());
      this.ended = true;
      // A renewal may have put back the subscription of an endpoint removed meanwhile: it goes with the endpoint.
      await this.transaction((sql) => (removed ? deleteSubscription(sql, this.subscription) : releaseSubscription(sql, this.subscription, instance))).catch(() => {});
    }
  }

  /**
   * Resolves when woken; with `ms` (claims put off), when a request ends or
   * after `ms`, whichever is first, however many commits come meanwhile.
   */
  private nextWake(ms?: number): Promise<void> {
    this.claimsPutOff = ms !== undefined;
    if (this.woken && !this.claimsPutOff) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(resolve, Math.max(0, ms));
      this.resolveWake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).then(() => {
      this.resolveWake = null;
      this.claimsPutOff = false;
    });
  }

  private async renew(): Promise<void> {
    const position = await this.transaction((sql) => leaseSubscription(sql, this.subscription, this.options.instance, LEASE_MS)).catch(() => undefined);
    if (position === null) {
      this.leaseLost = true;
      this.resume();
    }
  }

  /**
   * Turns the events past the subscription into pending deliveries and moves
   * the subscription past them, in one transaction: an event is claimed once
   * or not at all. Events of types the endpoint does not take are passed
   * over. Returns how many events were claimed.
   */
  private claim(endpoint: EndpointRow): Promise<number> {
    const { instance, settings } = this.options;
    return this.transaction(async (sql) => {
      this.lastClaimAt = Date.now();
      const position = await lockSubscription(sql, this.subscription, instance);
      if (position === null) {
        this.leaseLost = true;
        return 0;
      }
      if ((await pendingDeliveryCount(sql, this.endpointId)) >= settings.WEBHOOK_MAX_PENDING) return 0;
      // Positions are handed out in commit order: every event up to the feed's last position is committed.
      const { lastPosition } = await feedState(sql);
      if (lastPosition <= position) return 0;
      const events = await readEvents(sql, { after: position, limit: CLAIM_EVENTS, ...(endpoint.types && { types: endpoint.types }) });
      const lastRead = Number(events.at(-1)?.position ?? position);
      const through = events.length < CLAIM_EVENTS ? Math.max(lastPosition, lastRead) : lastRead;
      await insertDeliveries(sql, this.endpointId, deliveriesOf(events));
      await advanceSubscription(sql, this.subscription, instance, through);
      return events.length;
    });
  }

  /** Starts sending the deliveries due now of documents with none under way; how many it started. */
  private async sendDue(endpoint: EndpointRow): Promise<number> {
    const free = this.options.settings.WEBHOOK_CONCURRENCY - this.inFlight.size;
    if (free <= 0) return 0;
    const due = await this.transaction((sql) => dueDeliveries(sql, this.endpointId, [...this.inFlight.keys()], free));
    for (const delivery of due) {
      const request = this.deliver(endpoint, delivery)
        .catch((error) =>
          this.options.log.warn({ err: error, code: 'webhook-record-failed', endpoint: this.endpointId, delivery: delivery.id }, 'recording a webhook attempt failed; it is sent again'),
        )
        .finally(() => {
          this.inFlight.delete(delivery.name);
          this.resume();
        });
      this.inFlight.set(delivery.name, request);
    }
    return due.length;
  }

  private async deliver(endpoint: EndpointRow, delivery: DueDelivery): Promise<void> {
    const { settings, metrics, log } = this.options;
    const events = (await this.transaction((sql) => eventsByIds(sql, delivery.event_ids))).map(envelope);
    const attempt: Attempt =
      events.length === 0 ? { outcome: 'failed', status: null, error: 'its events were pruned (EVENTS_RETENTION_DAYS) before it was delivered' } : await this.send(endpoint, delivery.id, events);
    // Cut off by the stop: not the receiver's failure; whoever holds the lease next sends it at once.
    if (attempt.outcome !== 'delivered' && this.shutdown.signal.aborted) return;
    const result = { status: attempt.status, error: attempt.outcome === 'delivered' ? null : attempt.error };
    const where = { code: 'webhook', tenant: this.tenant, endpoint: this.endpointId, delivery: delivery.id, attempt: delivery.attempts + 1, status: attempt.status };

    if (attempt.outcome === 'delivered') {
      await this.transaction((sql) => recordDelivered(sql, this.endpointId, delivery.id, result));
      metrics.webhookDeliveries.inc({ outcome: 'delivered' });
      metrics.webhookLag.observe((Date.now() - Date.parse(events[0]!.occurredAt)) / 1000);
      return;
    }
    const schedule = settings.WEBHOOK_RETRY_SCHEDULE;
    if (attempt.outcome === 'retry' && delivery.attempts < schedule.length) {
      const delayMs = attempt.retryAfterMs ?? schedule[delivery.attempts]! * 1000 * (1 - JITTER * Math.random());
      await this.transaction((sql) => recordRetry(sql, delivery.id, result, new Date(Date.now() + delayMs)));
      metrics.webhookDeliveries.inc({ outcome: 'retried' });
      log.info({ ...where, retryInMs: Math.round(delayMs), error: attempt.error }, 'webhook delivery failed; retrying');
      return;
    }
    const dead = attempt.outcome === 'retry' ? { ...result, error: `gave up after ${delivery.attempts + 1} attempts; the last: ${attempt.error}` } : result;
    const enabled = await this.transaction((sql) => recordDead(sql, this.endpointId, delivery.id, dead, settings.WEBHOOK_DISABLE_AFTER));
    metrics.webhookDeliveries.inc({ outcome: 'dead' });
    log.warn({ ...where, error: dead.error }, 'webhook delivery dead-lettered');
    if (!enabled) {
      log.warn({ ...where, code: 'webhook-disabled' }, `webhook endpoint disabled: ${settings.WEBHOOK_DISABLE_AFTER} deliveries in a row dead-lettered; a replay enables it`);
      this.resume();
    }
  }

  /** One signed POST of `events` (Standard Webhooks: the signature covers id, timestamp and body). */
  private async send(endpoint: EndpointRow, deliveryId: string, events: ChangeEvent[]): Promise<Attempt> {
    const { settings, metrics } = this.options;
    const body = JSON.stringify({ events });
    const sentAt = new Date();
    const headers = {
      'webhook-id': deliveryId,
      'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
      'webhook-signature': new Webhook(endpoint.secret).sign(deliveryId, sentAt, body),
    };
    metrics.webhooksInFlight.inc();
    try {
      return await sendOnce(new URL(endpoint.url), headers, body, {
        timeoutMs: settings.WEBHOOK_TIMEOUT_MS,
        allowPrivate: settings.WEBHOOK_ALLOW_PRIVATE,
        signal: this.shutdown.signal,
      });
    } finally {
      metrics.webhooksInFlight.dec();
    }
  }
}

/**
 * The deliveries of claimed events: each document's events in feed order, at
 * most MAX_EVENTS_PER_DELIVERY to a delivery. Nothing is held back to fill one.
 */
export function deliveriesOf(events: readonly EventRow[]): NewDelivery[] {
  const byDocument = Map.groupBy(events, (event) => event.name);
  const deliveries: NewDelivery[] = [];
  for (const [name, documentEvents] of byDocument) {
    for (let start = 0; start < documentEvents.length; start += MAX_EVENTS_PER_DELIVERY) {
      const chunk = documentEvents.slice(start, start + MAX_EVENTS_PER_DELIVERY);
      deliveries.push({
        id: randomUUID(),
        name,
        firstPosition: Number(chunk[0]!.position),
        lastPosition: Number(chunk.at(-1)!.position),
        eventIds: chunk.map((event) => event.id),
      });
    }
  }
  return deliveries;
}
