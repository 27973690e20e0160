import { feedState, readEvents } from '../db/events.ts';
import type { Database } from '../db/database.ts';
import { ConcordError } from '../errors.ts';
import { envelope, type ChangeEvent, type EventType } from './event.ts';
import type { EventWriter } from './writer.ts';

export interface EventFeedConfiguration {
  db: Database;
  /** Wakes readers of a tenant at once when this instance commits its events. */
  writer: EventWriter;
  /** How often a waiting reader looks for events other instances committed. */
  pollMs: number;
  /** Most readers waiting (long-polls and streams) per tenant on this instance. */
  maxWaitingPerTenant: number;
}

export interface FeedQuery {
  /** Events after this position; absent: from the oldest kept. */
  after?: number;
  limit: number;
  types?: readonly EventType[];
  /** One document's events only. */
  name?: string;
}

export interface FeedPage {
  events: ChangeEvent[];
  /** The cursor to continue from (the position read up to, past events the filters left out). */
  next: number;
}

/**
 * Reads a tenant's change events by cursor, and waits for new ones. The
 * cursor is a feed position; positions are handed out in commit order
 * (schema/008_events.sql), so every event a later read can see is after every
 * cursor an earlier read returned: nothing is skipped.
 */
export class EventFeed {
  private readonly configuration: EventFeedConfiguration;
  /** Per tenant: how many readers wait (long polls and streams). */
  private readonly waiting = new Map<string, number>();
  /** Per tenant: what wakes its waiting readers. */
  private readonly wakers = new Map<string, Set<() => void>>();

  constructor(configuration: EventFeedConfiguration) {
    this.configuration = configuration;
    configuration.writer.on('committed', (tenant) => this.wake(tenant));
  }

  /** One page after the cursor: `cursor-expired` (410) when events after it were pruned. */
  read(tenant: string, query: FeedQuery): Promise<FeedPage> {
    return this.configuration.db.transaction(tenant, async (sql) => {
      // Read first: every event at or below it is visible to the read below.
      const { lastPosition, prunedThrough } = await feedState(sql);
      const after = query.after ?? prunedThrough;
      if (after < prunedThrough) {
        throw new ConcordError('cursor-expired', `events up to position ${prunedThrough} were pruned (EVENTS_RETENTION_DAYS); start again without a cursor, from ${prunedThrough}`);
      }
      const events = (await readEvents(sql, { ...query, after })).map(envelope);
      const full = events.length === query.limit;
      return { events, next: full ? events.at(-1)!.position : Math.max(after, lastPosition, events.at(-1)?.position ?? 0) };
    });
  }

  /** Like `read`, but waits up to `waitMs` for events when there are none yet (a long poll). */
  async readWaiting(tenant: string, query: FeedQuery, waitMs: number, signal?: AbortSignal): Promise<FeedPage> {
    const deadline = Date.now() + waitMs;
    let page = await this.read(tenant, query);
    if (page.events.length > 0 || waitMs <= 0) return page;
    return this.whileWaiting(tenant, async () => {
      while (page.events.length === 0 && Date.now() < deadline && !signal?.aborted) {
        await this.nextChance(tenant, deadline - Date.now(), signal);
        page = await this.read(tenant, { ...query, after: page.next });
      }
      return page;
    });
  }

  /** Runs `read` pages in a loop for as long as `signal` lets it, handing each non-empty page to `deliver` (a stream). */
  async follow(tenant: string, query: FeedQuery, deliver: (page: FeedPage) => Promise<void>, signal: AbortSignal): Promise<void> {
    await this.whileWaiting(tenant, async () => {
      let after = query.after;
      while (!signal.aborted) {
        const page = await this.read(tenant, { ...query, after });
        after = page.next;
        if (page.events.length > 0) await deliver(page);
        if (page.events.length < query.limit) await this.nextChance(tenant, this.configuration.pollMs, signal);
      }
    });
  }

  /** Counts a waiting reader for the per-tenant cap (`rate-limited` beyond it). */
  private async whileWaiting<T>(tenant: string, work: () => Promise<T>): Promise<T> {
    const count = this.waiting.get(tenant) ?? 0;
    if (count >= this.configuration.maxWaitingPerTenant) {
      throw new ConcordError('rate-limited', `${count} readers of this tenant's events already wait on this instance (EVENTS_MAX_WAITING_PER_TENANT)`);
    }
    this.waiting.set(tenant, count + 1);
    try {
      return await work();
    } finally {
      const left = this.waiting.get(tenant)! - 1;
      if (left === 0) this.waiting.delete(tenant);
      else this.waiting.set(tenant, left);
    }
  }

  /** Resolves when this instance commits events of the tenant, after a poll interval, or at `ms` or abort, whichever is first. */
  private nextChance(tenant: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const wakers = this.wakers.get(tenant) ?? new Set();
      this.wakers.set(tenant, wakers);
      const done = () => {
        clearTimeout(timer);
        wakers.delete(done);
        if (wakers.size === 0) this.wakers.delete(tenant);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, Math.min(ms, this.configuration.pollMs)));
      wakers.add(done);
      signal?.addEventListener('abort', done);
    });
  }

  private wake(tenant: string): void {
    for (const wake of [...(this.wakers.get(tenant) ?? [])]) wake();
  }
}
