import { randomBytes, randomUUID } from 'node:crypto';
import type { Database } from '../db/database.ts';
import { feedState } from '../db/events.ts';
import { moveSubscription } from '../db/subscriptions.ts';
import {
  deleteEndpoint,
  deleteSubscription,
  deliveryLog,
  enableEndpoint,
  endpointById,
  insertEndpoint,
  listEndpoints,
  lockEndpoint,
  supersedePending,
  type EndpointRow,
} from '../db/webhooks.ts';
import { ConcordError } from '../errors.ts';
import type { EventType } from '../events/event.ts';
import { checkPublicHost } from './addresses.ts';
import { subscriptionOf } from './dispatcher.ts';

export interface Registration {
  url: string;
  /** Unset: every type. */
  types?: EventType[];
}

/** An endpoint as the API shows it: never its secret, which only registration returns. */
export interface Endpoint {
  id: string;
  url: string;
  types: EventType[] | null;
  enabled: boolean;
  disabledReason: string | null;
  createdAt: string;
}

/** A Standard Webhooks secret: `whsec_` and 32 random bytes in base64. */
function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

function shown(row: EndpointRow): Endpoint {
  // Written from validated event types only (registration).
  return { id: row.id, url: row.url, types: row.types as EventType[] | null, enabled: row.enabled, disabledReason: row.disabled_reason, createdAt: new Date(row.created_at).toISOString() };
}

/** A tenant's webhook endpoints: registering, listing, removing, their delivery logs, replays (docs/webhooks.md). */
export class WebhookEndpoints {
  private readonly db: Database;
  private readonly allowPrivate: boolean;

  constructor(db: Database, allowPrivate: boolean) {
    this.db = db;
    this.allowPrivate = allowPrivate;
  }

  /**
   * Registers an endpoint that receives the events committed from now on
   * (its subscription starts at the feed's last position). The only answer
   * that carries the secret.
   */
  async register(tenant: string, registration: Registration): Promise<Endpoint & { secret: string }> {
    const url = new URL(registration.url);
    await checkPublicHost(url, this.allowPrivate);
    const id = randomUUID();
    const secret = newSecret();
    return this.db.transaction(tenant, async (sql) => {
      const row = await insertEndpoint(sql, { id, url: url.href, types: registration.types ? [...new Set(registration.types)] : null, secret });
      await moveSubscription(sql, subscriptionOf(id), (await feedState(sql)).lastPosition);
      return { ...shown(row), secret };
    });
  }

  async list(tenant: string): Promise<Endpoint[]> {
    return (await this.db.transaction(tenant, listEndpoints)).map(shown);
  }

  async remove(tenant: string, id: string): Promise<void> {
    await this.db.transaction(tenant, async (sql) => {
      if (!(await deleteEndpoint(sql, id))) throw notFound(id);
      await deleteSubscription(sql, subscriptionOf(id));
    });
  }

  /** The endpoint's delivery log, newest first; `next` is the `before` of the following page (null on the last). */
  async deliveries(tenant: string, id: string, page: { before: number; limit: number }) {
    return this.db.transaction(tenant, async (sql) => {
      if (!(await endpointById(sql, id))) throw notFound(id);
      const rows = await deliveryLog(sql, id, page);
      return {
        deliveries: rows.map((row) => ({
          id: row.id,
          document: row.name,
          // The feed positions of its first and last event: `replay` from firstPosition - 1 sends it again.
          positions: [Number(row.first_position), Number(row.last_position)],
          eventIds: row.event_ids,
          status: row.status,
          attempts: row.attempts,
          nextAttemptAt: row.status === 'pending' ? new Date(row.next_attempt_at).toISOString() : null,
          lastStatus: row.last_status,
          lastError: row.last_error,
          createdAt: new Date(row.created_at).toISOString(),
          updatedAt: new Date(row.updated_at).toISOString(),
        })),
        next: rows.length === page.limit ? Number(rows.at(-1)!.number) : null,
      };
    });
  }

  /**
   * Sends the events after position `after` again (and from there on), and
   * enables the endpoint if it was disabled. Pending deliveries past `after`
   * are replaced by the replay's.
   */
  async replay(tenant: string, id: string, after: number): Promise<Endpoint> {
    return this.db.transaction(tenant, async (sql) => {
      if (!(await lockEndpoint(sql, id))) throw notFound(id);
      const feed = await feedState(sql);
      if (after < feed.prunedThrough) {
        throw new ConcordError('cursor-expired', `events up to position ${feed.prunedThrough} were pruned (EVENTS_RETENTION_DAYS); replay from ${feed.prunedThrough} or later`);
      }
      if (after > feed.lastPosition) throw new ConcordError('bad-request', `position ${after} is past the feed's last (${feed.lastPosition})`);
      await supersedePending(sql, id, after);
      await moveSubscription(sql, subscriptionOf(id), after);
      await enableEndpoint(sql, id);
      return shown((await endpointById(sql, id))!);
    });
  }
}

function notFound(id: string): ConcordError {
  return new ConcordError('not-found', `no webhook endpoint ${id}`);
}
