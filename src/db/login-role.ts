import { ConfigError } from '../config.ts';
import type { Database } from './database.ts';

/**
 * In production the tenant wall must not rest on the per-transaction switch to
 * `concord_app` alone: a login role that is a superuser or has BYPASSRLS would
 * read every tenant's rows as soon as that switch is missed. Such a
 * DATABASE_URL is refused, saying what to set instead.
 */
export async function refuseRlsBypassingLogin(db: Database): Promise<void> {
  const { rows } = await db.ownerTransaction((sql) =>
    sql.query<{ role: string; rolsuper: boolean; rolbypassrls: boolean }>('SELECT rolname AS role, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user'),
  );
  const login = rows[0];
  if (!login || (!login.rolsuper && !login.rolbypassrls)) return;
  const what = login.rolsuper ? 'a superuser' : 'a role with BYPASSRLS';
  throw new ConfigError(
    `DATABASE_URL logs in as "${login.role}", ${what}, which row-level security does not hold; with NODE_ENV=production ` +
      `move that URL to MIGRATION_DATABASE_URL and set DATABASE_URL to a role without SUPERUSER or BYPASSRLS that only belongs to concord_app ` +
      `(CREATE ROLE concord_server LOGIN PASSWORD '...'; GRANT concord_app TO concord_server; see docs/postgres.md)`,
  );
}
