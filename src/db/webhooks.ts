import type { Sql } from './database.ts';
import type { EventRow } from './events.ts';

// Webhook endpoints and their delivery log (schema/010_webhooks.sql). Every
// function runs in a tenant transaction, except those that say they run as the owner, across tenants.

export interface EndpointRow {
  id: string;
  url: string;
  types: string[] | null;
  secret: string;
  enabled: boolean;
  disabled_reason: string | null;
  created_at: string | Date;
}

export interface NewEndpoint {
  id: string;
  url: string;
  types: readonly string[] | null;
  secret: string;
}

export async function insertEndpoint(sql: Sql, endpoint: NewEndpoint): Promise<EndpointRow> {
  const { rows } = await sql.query<EndpointRow>(
    `INSERT INTO webhook_endpoints (tenant_id, id, url, types, secret) VALUES (current_tenant(), $1, $2, $3, $4)
     RETURNING id, url, types, secret, enabled, disabled_reason, created_at`,
    [endpoint.id, endpoint.url, endpoint.types, endpoint.secret],
  );
  return rows[0]!;
}

export async function listEndpoints(sql: Sql): Promise<EndpointRow[]> {
  const { rows } = await sql.query<EndpointRow>(
    `SELECT id, url, types, secret, enabled, disabled_reason, created_at FROM webhook_endpoints
     WHERE tenant_id = current_tenant() ORDER BY created_at, id`,
  );
  return rows;
}

export async function endpointById(sql: Sql, id: string): Promise<EndpointRow | null> {
  const { rows } = await sql.query<EndpointRow>(
    `SELECT id, url, types, secret, enabled, disabled_reason, created_at FROM webhook_endpoints
     WHERE tenant_id = current_tenant() AND id = $1`,
    [id],
  );
  return rows[0] ?? null;
}

/**
 * Locks the endpoint's row until the transaction ends; false when there is
 * none. Whatever changes an endpoint and its deliveries together takes this
 * first (a replay, a delivery recorded as delivered or dead; removing an
 * endpoint locks it first by its DELETE), so they wait for each other in turn
 * and never in a circle: a replay holding a pending delivery while it waits
 * for the endpoint, a dead-lettering holding the endpoint while it waits for
 * that delivery (PostgreSQL broke such a deadlock by failing the replay).
 * NO KEY UPDATE, as an UPDATE takes: a claim can still insert deliveries
 * meanwhile (their foreign key takes KEY SHARE).
 */
export async function lockEndpoint(sql: Sql, id: string): Promise<boolean> {
  const { rows } = await sql.query('SELECT 1 FROM webhook_endpoints WHERE tenant_id = current_tenant() AND id = $1 FOR NO KEY UPDATE', [id]);
  return rows.length > 0;
}

/** Removes the endpoint with its delivery log; false when there was none. */
export async function deleteEndpoint(sql: Sql, id: string): Promise<boolean> {
  const { rows } = await sql.query('DELETE FROM webhook_endpoints WHERE tenant_id = current_tenant() AND id = $1 RETURNING id', [id]);
  return rows.length > 0;
}

/** Drops a removed endpoint's place in the feed (its subscription, schema/009). */
export async function deleteSubscription(sql: Sql, subscription: string): Promise<void> {
  await sql.query('DELETE FROM event_subscriptions WHERE tenant_id = current_tenant() AND id = $1', [subscription]);
}

/** Enables the endpoint again (a replay) and starts counting dead deliveries from zero. */
export async function enableEndpoint(sql: Sql, id: string): Promise<void> {
  await sql.query(
    `UPDATE webhook_endpoints SET enabled = true, disabled_reason = NULL, dead_in_a_row = 0
     WHERE tenant_id = current_tenant() AND id = $1`,
    [id],
  );
}

/**
 * A replay from `after` sends the events past it again: pending deliveries
 * that start past it are dead-lettered (their events go out in the replay's
 * deliveries, in order) rather than sent twice, out of order.
 */
export async function supersedePending(sql: Sql, endpointId: string, after: number): Promise<void> {
  await sql.query(
    `UPDATE webhook_deliveries SET status = 'dead', last_error = $3, updated_at = now()
     WHERE tenant_id = current_tenant() AND endpoint_id = $1 AND status = 'pending' AND first_position > $2`,
    [endpointId, after, `replaced by a replay from position ${after}`],
  );
}

/**
 * The position of subscription `id` while `owner` holds its lease, locked
 * until the transaction ends: a replay (which moves it) waits for a claim
 * under way, and a claim after the replay reads where the replay put it.
 */
export async function lockSubscription(sql: Sql, id: string, owner: string): Promise<number | null> {
  const { rows } = await sql.query<{ position: string }>(
    `SELECT position FROM event_subscriptions
     WHERE tenant_id = current_tenant() AND id = $1 AND lease_owner = $2 AND lease_until >= now()
     FOR UPDATE`,
    [id, owner],
  );
  return rows[0] ? Number(rows[0].position) : null;
}

export async function pendingDeliveryCount(sql: Sql, endpointId: string): Promise<number> {
  const { rows } = await sql.query<{ pending: string }>(
    `SELECT count(*) AS pending FROM webhook_deliveries WHERE tenant_id = current_tenant() AND endpoint_id = $1 AND status = 'pending'`,
    [endpointId],
  );
  return Number(rows[0]!.pending);
}

export interface NewDelivery {
  id: string;
  name: string;
  firstPosition: number;
  lastPosition: number;
  eventIds: string[];
}

export async function insertDeliveries(sql: Sql, endpointId: string, deliveries: NewDelivery[]): Promise<void> {
  if (deliveries.length === 0) return;
  await sql.query(
    `INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, name, first_position, last_position, event_ids)
     SELECT current_tenant(), d.id, $1, d.name, d.first_position, d.last_position, d.event_ids
     FROM jsonb_to_recordset($2::jsonb) AS d(id uuid, name text, first_position bigint, last_position bigint, event_ids uuid[])
     ORDER BY d.first_position`,
    [
      endpointId,
      JSON.stringify(
        deliveries.map((delivery) => ({
          id: delivery.id,
          name: delivery.name,
          first_position: delivery.firstPosition,
          last_position: delivery.lastPosition,
          // jsonb_to_recordset reads a uuid[] from its array literal.
          event_ids: `{${delivery.eventIds.join(',')}}`,
        })),
      ),
    ],
  );
}

export interface DueDelivery {
  id: string;
  name: string;
  event_ids: string[];
  attempts: number;
}

/**
 * The deliveries to send now: of each document not in `busy`, its oldest
 * pending delivery, when its next attempt is due (a document's later
 * deliveries wait for it: seq order per document).
 */
export async function dueDeliveries(sql: Sql, endpointId: string, busy: readonly string[], limit: number): Promise<DueDelivery[]> {
  const { rows } = await sql.query<DueDelivery>(
    `SELECT id, name, event_ids, attempts FROM (
       SELECT DISTINCT ON (name) id, name, event_ids, attempts, next_attempt_at, first_position
       FROM webhook_deliveries
       WHERE tenant_id = current_tenant() AND endpoint_id = $1 AND status = 'pending' AND NOT (name = ANY ($2::text[]))
       ORDER BY name, first_position
     ) heads
     WHERE next_attempt_at <= now()
     ORDER BY first_position
     LIMIT $3`,
    [endpointId, busy, limit],
  );
  return rows;
}

/** The events a delivery carries, in feed order (those pruned since are gone). */
export async function eventsByIds(sql: Sql, ids: readonly string[]): Promise<EventRow[]> {
  const { rows } = await sql.query<EventRow>(
    `SELECT tenant_id, position, id, type, name, seq_first, seq_last, actor, origin, occurred_at, data
     FROM change_events WHERE tenant_id = current_tenant() AND id = ANY ($1::uuid[]) ORDER BY position`,
    [ids],
  );
  return rows;
}

export interface AttemptResult {
  /** The receiver's HTTP status; null when it did not answer. */
  status: number | null;
  error: string | null;
}

/**
 * A delivery the receiver took: the endpoint's dead count starts again, and
 * its retries waiting for later are due now (the receiver is back). Locks the
 * endpoint first (lockEndpoint). A delivery a replay replaced meanwhile keeps
 * the replay's record (the replay sends its events again: at least once).
 */
export async function recordDelivered(sql: Sql, endpointId: string, id: string, result: AttemptResult): Promise<void> {
  await lockEndpoint(sql, endpointId);
  await sql.query(
    `WITH delivered AS (
       UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_status = $3, last_error = NULL, updated_at = now()
       WHERE tenant_id = current_tenant() AND id = $2 AND status = 'pending'
     ),
     endpoint AS (
       UPDATE webhook_endpoints SET dead_in_a_row = 0 WHERE tenant_id = current_tenant() AND id = $1 AND dead_in_a_row > 0
     )
     UPDATE webhook_deliveries SET next_attempt_at = now()
     WHERE tenant_id = current_tenant() AND endpoint_id = $1 AND status = 'pending' AND next_attempt_at > now()`,
    [endpointId, id, result.status],
  );
}

/** A failed attempt to try again at `nextAttemptAt` (unless a replay replaced the delivery meanwhile). */
export async function recordRetry(sql: Sql, id: string, result: AttemptResult, nextAttemptAt: Date): Promise<void> {
  await sql.query(
    `UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3, next_attempt_at = $4, updated_at = now()
     WHERE tenant_id = current_tenant() AND id = $1 AND status = 'pending'`,
    [id, result.status, result.error, nextAttemptAt],
  );
}

/**
 * A delivery given up on (dead-lettered; it stays in the log). The endpoint
 * is disabled once `disableAfter` of its deliveries died in a row. Returns
 * whether it is still enabled (false once it is removed). Locks the endpoint
 * first (lockEndpoint). A delivery a replay replaced meanwhile keeps the
 * replay's record, and its death does not count against the endpoint the
 * replay enabled.
 */
export async function recordDead(sql: Sql, endpointId: string, id: string, result: AttemptResult, disableAfter: number): Promise<boolean> {
  if (!(await lockEndpoint(sql, endpointId))) return false;
  const { rows } = await sql.query<{ enabled: boolean }>(
    `WITH dead AS (
       UPDATE webhook_deliveries SET status = 'dead', attempts = attempts + 1, last_status = $3, last_error = $4, updated_at = now()
       WHERE tenant_id = current_tenant() AND id = $2 AND status = 'pending'
       RETURNING id
     )
     UPDATE webhook_endpoints SET
       dead_in_a_row = dead_in_a_row + 1,
       enabled = enabled AND dead_in_a_row + 1 < $5,
       disabled_reason = CASE WHEN enabled AND dead_in_a_row + 1 >= $5
         THEN $5::int || ' deliveries in a row dead-lettered; the last: ' || coalesce($4::text, 'no error') ELSE disabled_reason END
     WHERE tenant_id = current_tenant() AND id = $1 AND EXISTS (SELECT FROM dead)
     RETURNING enabled`,
    [endpointId, id, result.status, result.error, disableAfter],
  );
  // Nothing returned: the delivery was replaced, and the endpoint is as the replay left it (enabled).
  return rows[0]?.enabled ?? true;
}

export interface DeliveryLogRow {
  number: string;
  id: string;
  name: string;
  first_position: string;
  last_position: string;
  event_ids: string[];
  status: 'pending' | 'delivered' | 'dead';
  attempts: number;
  next_attempt_at: string | Date;
  last_status: number | null;
  last_error: string | null;
  created_at: string | Date;
  updated_at: string | Date;
}

/** The endpoint's delivery log, newest first, before log number `before` (0: from the newest). */
export async function deliveryLog(sql: Sql, endpointId: string, page: { before: number; limit: number }): Promise<DeliveryLogRow[]> {
  const { rows } = await sql.query<DeliveryLogRow>(
    `SELECT number, id, name, first_position, last_position, event_ids, status, attempts, next_attempt_at, last_status, last_error, created_at, updated_at
     FROM webhook_deliveries
     WHERE tenant_id = current_tenant() AND endpoint_id = $1 AND ($2 = 0 OR number < $2)
     ORDER BY number DESC
     LIMIT $3`,
    [endpointId, page.before, page.limit],
  );
  return rows;
}

/**
 * As the owner, across tenants: the enabled endpoints with something to do
 * that no other instance holds: events past their subscription while they
 * have fewer than `maxPending` pending deliveries, or a delivery due.
 */
export async function endpointsWithWork(sql: Sql, owner: string, maxPending: number): Promise<Array<{ tenant_id: string; id: string }>> {
  const { rows } = await sql.query<{ tenant_id: string; id: string }>(
    `SELECT e.tenant_id, e.id FROM webhook_endpoints e
     JOIN event_subscriptions s ON s.tenant_id = e.tenant_id AND s.id = 'webhook:' || e.id
     JOIN event_feeds f ON f.tenant_id = e.tenant_id
     WHERE e.enabled
       AND (s.lease_owner IS NULL OR s.lease_owner = $1 OR s.lease_until < now())
       AND (
         (f.last_position > s.position AND (
           SELECT count(*) FROM webhook_deliveries d WHERE d.tenant_id = e.tenant_id AND d.endpoint_id = e.id AND d.status = 'pending') < $2)
         OR EXISTS (
           SELECT 1 FROM webhook_deliveries d
           WHERE d.tenant_id = e.tenant_id AND d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= now()))`,
    [owner, maxPending],
  );
  return rows;
}

/** As the owner, across tenants: deletes delivered and dead deliveries last touched before `before`. Returns how many. */
export async function pruneDeliveriesBefore(sql: Sql, before: Date): Promise<number> {
  const { rows } = await sql.query<{ deleted: string }>(
    `WITH deleted AS (DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < $1 RETURNING 1)
     SELECT count(*) AS deleted FROM deleted`,
    [before],
  );
  return Number(rows[0]!.deleted);
}
