import type { Sql } from './database.ts';

/**
 * Takes (or renews) the lease of subscription `id` in the current tenant for
 * `owner`, creating the subscription at `startAt` if it is new. Returns the
 * subscription's position, or null while another owner's lease runs.
 */
export async function leaseSubscription(sql: Sql, id: string, owner: string, leaseMs: number, startAt = 0): Promise<number | null> {
  const { rows } = await sql.query<{ position: string }>(
    `INSERT INTO event_subscriptions AS s (tenant_id, id, position, lease_owner, lease_until)
     VALUES (current_tenant(), $1, $4, $2, now() + make_interval(secs => $3 / 1000.0))
     ON CONFLICT (tenant_id, id) DO UPDATE SET lease_owner = $2, lease_until = EXCLUDED.lease_until
       WHERE s.lease_owner IS NULL OR s.lease_owner = $2 OR s.lease_until < now()
     RETURNING position`,
    [id, owner, leaseMs, startAt],
  );
  return rows[0] ? Number(rows[0].position) : null;
}

/** Moves the subscription to `position` while `owner` holds its lease; false when it lost the lease. */
export async function advanceSubscription(sql: Sql, id: string, owner: string, position: number): Promise<boolean> {
  const { rows } = await sql.query(
    `UPDATE event_subscriptions SET position = GREATEST(position, $3)
     WHERE tenant_id = current_tenant() AND id = $1 AND lease_owner = $2 AND lease_until >= now()
     RETURNING position`,
    [id, owner, position],
  );
  return rows.length > 0;
}

/** Ends `owner`'s lease (at shutdown), so another instance need not wait it out. */
export async function releaseSubscription(sql: Sql, id: string, owner: string): Promise<void> {
  await sql.query(`UPDATE event_subscriptions SET lease_owner = NULL, lease_until = NULL WHERE tenant_id = current_tenant() AND id = $1 AND lease_owner = $2`, [id, owner]);
}

/** Sets the subscription's position (a replay from a cursor), whoever holds it. */
export async function moveSubscription(sql: Sql, id: string, position: number): Promise<void> {
  await sql.query(
    `INSERT INTO event_subscriptions AS s (tenant_id, id, position) VALUES (current_tenant(), $1, $2)
     ON CONFLICT (tenant_id, id) DO UPDATE SET position = $2`,
    [id, position],
  );
}

/**
 * As the owner, across tenants: the tenants whose feed has events past
 * subscription `id` (a tenant without the subscription counts from 0).
 */
export async function tenantsBehind(sql: Sql, id: string): Promise<string[]> {
  const { rows } = await sql.query<{ tenant_id: string }>(
    `SELECT f.tenant_id FROM event_feeds f
     LEFT JOIN event_subscriptions s ON s.tenant_id = f.tenant_id AND s.id = $1
     WHERE f.last_position > coalesce(s.position, 0)`,
    [id],
  );
  return rows.map((row) => row.tenant_id);
}
