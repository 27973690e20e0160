import type { Json } from '../json.ts';
import type { Sql, Statement } from './database.ts';
import { pgJson } from './json.ts';
import type { UpdateOrigin } from './updates.ts';

/** An event to insert (src/events/event.ts derives them); the feed gives it its position. */
export interface NewEventRow {
  id: string;
  type: string;
  name: string;
  /** The document updates it covers. */
  seqFirst: number;
  seqLast: number;
  actor: string;
  origin: UpdateOrigin;
  occurredAt: Date;
  data: Json;
}

/** A `change_events` row as the driver returns it. */
export interface EventRow {
  tenant_id: string;
  position: string | number;
  id: string;
  type: string;
  name: string;
  seq_first: string | number;
  seq_last: string | number;
  actor: string;
  origin: UpdateOrigin;
  occurred_at: string | Date;
  data: Json;
}

/**
 * Inserts a commit's events in one statement, at the next positions of the
 * tenant's feed. The upsert locks the feed's row until the transaction ends,
 * so positions are handed out in commit order (schema/008_events.sql). It
 * returns no rows: a commit's events are read from the table, by position.
 */
export function insertEvents(events: NewEventRow[]): Statement | null {
  if (events.length === 0) return null;
  return {
    text: `WITH new_events AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS e(
         id uuid, type text, name text, seq_first bigint, seq_last bigint, actor text, origin text, occurred_at timestamptz, data jsonb, ord bigint)
     ),
     feed AS (
       INSERT INTO event_feeds AS f (tenant_id, last_position) VALUES (current_tenant(), $2)
       ON CONFLICT (tenant_id) DO UPDATE SET last_position = f.last_position + EXCLUDED.last_position
       RETURNING last_position
     )
     INSERT INTO change_events (tenant_id, position, id, type, name, seq_first, seq_last, actor, origin, occurred_at, data)
     SELECT current_tenant(), feed.last_position - $2 + e.ord, e.id, e.type, e.name, e.seq_first, e.seq_last, e.actor, e.origin, e.occurred_at, e.data
     FROM new_events e CROSS JOIN feed`,
    params: [
      pgJson(
        events.map((event, index) => ({
          ord: index + 1,
          id: event.id,
          type: event.type,
          name: event.name,
          seq_first: event.seqFirst,
          seq_last: event.seqLast,
          actor: event.actor,
          origin: event.origin,
          occurred_at: event.occurredAt.toISOString(),
          data: event.data,
        })),
      ),
      events.length,
    ],
  };
}

export interface EventQuery {
  /** Events after this position. */
  after: number;
  limit: number;
  types?: readonly string[];
  /** One document's events only. */
  name?: string;
}

/** The tenant's events after a position, oldest first. */
export async function readEvents(sql: Sql, query: EventQuery): Promise<EventRow[]> {
  const { rows } = await sql.query<EventRow>(
    `SELECT tenant_id, position, id, type, name, seq_first, seq_last, actor, origin, occurred_at, data
     FROM change_events
     WHERE tenant_id = current_tenant() AND position > $1
       AND ($2::text[] IS NULL OR type = ANY ($2::text[]))
       AND ($3::text IS NULL OR name = $3)
     ORDER BY position
     LIMIT $4`,
    [query.after, query.types ?? null, query.name ?? null, query.limit],
  );
  return rows;
}

export interface FeedState {
  /** The last position handed out (0: no event yet). */
  lastPosition: number;
  /** Events at or below this position are pruned. */
  prunedThrough: number;
}

export async function feedState(sql: Sql): Promise<FeedState> {
  const { rows } = await sql.query<{ last_position: string; pruned_through: string }>(
    'SELECT last_position, pruned_through FROM event_feeds WHERE tenant_id = current_tenant()',
  );
  return { lastPosition: Number(rows[0]?.last_position ?? 0), prunedThrough: Number(rows[0]?.pruned_through ?? 0) };
}

/**
 * As the owner, across tenants: deletes events that occurred before `before`
 * and moves each feed's horizon past them. Returns how many were deleted.
 */
export async function pruneEventsBefore(sql: Sql, before: Date): Promise<number> {
  const { rows } = await sql.query<{ deleted: string }>(
    `WITH deleted AS (
       DELETE FROM change_events WHERE occurred_at < $1 RETURNING tenant_id, position
     ),
     horizons AS (
       UPDATE event_feeds f SET pruned_through = GREATEST(f.pruned_through, d.through)
       FROM (SELECT tenant_id, max(position) AS through FROM deleted GROUP BY tenant_id) d
       WHERE f.tenant_id = d.tenant_id
     )
     SELECT count(*) AS deleted FROM deleted`,
    [before],
  );
  return Number(rows[0]!.deleted);
}
