import type { Sql } from './database.ts';

// Locks on targets of a document and their audit log (schema/011_locks.sql).
// Every function runs in a tenant transaction. A lock whose `until` has
// passed counts as free everywhere.

export interface LockRow {
  target: string;
  user_id: string;
  user_name: string | null;
  until: string | Date;
}

export type LockAction = 'acquired' | 'renewed' | 'released' | 'broken';

export interface LockLogRow {
  number: string | number;
  target: string;
  action: LockAction;
  holder_id: string;
  by_id: string;
  until: string | Date;
  at: string | Date;
}

/** The document's unexpired locks, by target. */
export async function liveLocks(sql: Sql, name: string): Promise<LockRow[]> {
  const { rows } = await sql.query<LockRow>(
    `SELECT target, user_id, user_name, until FROM document_locks
     WHERE tenant_id = current_tenant() AND name = $1 AND until > now()
     ORDER BY target`,
    [name],
  );
  return rows;
}

/**
 * Takes `target` for `userId` for `ttlSeconds` when it is free, expired, or
 * already theirs (then it is renewed: `acquired` is false). Null when another
 * user holds it. A rival acquiring at once waits for this transaction, then
 * finds the target held.
 */
export async function acquireLock(
  sql: Sql,
  lock: { name: string; target: string; userId: string; userName: string | null; ttlSeconds: number },
): Promise<(LockRow & { acquired: boolean }) | null> {
  const { rows } = await sql.query<LockRow & { acquired: boolean }>(
    `INSERT INTO document_locks AS held (tenant_id, name, target, user_id, user_name, until)
     VALUES (current_tenant(), $1, $2, $3, $4, now() + make_interval(secs => $5))
     ON CONFLICT (tenant_id, name, target) DO UPDATE
       SET user_id = EXCLUDED.user_id, user_name = EXCLUDED.user_name, until = EXCLUDED.until,
           acquired_at = CASE WHEN held.until > now() THEN held.acquired_at ELSE now() END
       WHERE held.until <= now() OR held.user_id = EXCLUDED.user_id
     RETURNING target, user_id, user_name, until, acquired_at = now() AS acquired`,
    [lock.name, lock.target, lock.userId, lock.userName, lock.ttlSeconds],
  );
  return rows[0] ?? null;
}

/** The unexpired lock on `target`, locked until the transaction ends (a release or break decides on it). */
export async function lockForUpdate(sql: Sql, name: string, target: string): Promise<LockRow | null> {
  const { rows } = await sql.query<LockRow>(
    `SELECT target, user_id, user_name, until FROM document_locks
     WHERE tenant_id = current_tenant() AND name = $1 AND target = $2 AND until > now()
     FOR UPDATE`,
    [name, target],
  );
  return rows[0] ?? null;
}

export async function deleteLock(sql: Sql, name: string, target: string): Promise<void> {
  await sql.query('DELETE FROM document_locks WHERE tenant_id = current_tenant() AND name = $1 AND target = $2', [name, target]);
}

/** Deletes every unexpired lock `userId` holds on the document; those it deleted. */
export async function deleteLocksOf(sql: Sql, name: string, userId: string): Promise<LockRow[]> {
  const { rows } = await sql.query<LockRow>(
    `DELETE FROM document_locks
     WHERE tenant_id = current_tenant() AND name = $1 AND user_id = $2 AND until > now()
     RETURNING target, user_id, user_name, until`,
    [name, userId],
  );
  return rows;
}

export interface LockLogEntry {
  target: string;
  action: LockAction;
  holderId: string;
  byId: string;
  until: string | Date;
}

export async function insertLockLog(sql: Sql, name: string, entries: LockLogEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await sql.query(
    `INSERT INTO document_lock_log (tenant_id, name, target, action, holder_id, by_id, until)
     SELECT current_tenant(), $1, e.target, e.action, e.holder_id, e.by_id, e.until
     FROM jsonb_to_recordset($2::jsonb) AS e(target text, action text, holder_id text, by_id text, until timestamptz)`,
    [name, JSON.stringify(entries.map((entry) => ({ target: entry.target, action: entry.action, holder_id: entry.holderId, by_id: entry.byId, until: entry.until })))],
  );
}

/** The document's lock log, newest first, `limit` rows numbered below `before` (0: from the newest). */
export async function lockLog(sql: Sql, name: string, page: { before: number; limit: number }): Promise<LockLogRow[]> {
  const { rows } = await sql.query<LockLogRow>(
    `SELECT number, target, action, holder_id, by_id, until, at FROM document_lock_log
     WHERE tenant_id = current_tenant() AND name = $1 AND ($2 = 0 OR number < $2)
     ORDER BY number DESC
     LIMIT $3`,
    [name, page.before, page.limit],
  );
  return rows;
}
