import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createStorage, postgresUrl, postgresTitle } from './support/database.ts';
import { ServerProcess } from './support/server.ts';
import { TEST_SECRET } from './support/tokens.ts';

const run = promisify(execFile);
/** A superuser login on the test PostgreSQL (`.ci/run` creates `concord_super`). */
const superuserUrl = process.env.TEST_SUPERUSER_DATABASE_URL || undefined;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const production = { NODE_ENV: 'production', AUTH_JWT_SECRET: TEST_SECRET, PORT: '0' };

async function database() {
  const storage = await createStorage('postgres');
  cleanups.push(() => storage.drop());
  return storage;
}

/** `url` with another login. */
function as(url: string, login: { username: string; password: string }): string {
  const changed = new URL(url);
  changed.username = login.username;
  changed.password = login.password;
  return changed.toString();
}

/** Runs SQL as `url`'s role. */
async function sql(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** `npm start` with `env`, expected to refuse: its exit code and what it printed. */
async function refusedStart(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const failure = await run(process.execPath, ['src/main.ts'], { env: { ...process.env, ...env }, timeout: 60_000 }).then(
    () => ({ code: 0, stderr: 'it started' }),
    (error) => error,
  );
  return { code: failure.code, stderr: failure.stderr };
}

/** A fresh login role on the test PostgreSQL, dropped after the test. */
async function loginRole(adminUrl: string, attributes: string) {
  const login = { username: `concord_login_${randomBytes(4).toString('hex')}`, password: 'login-secret' };
  await sql(adminUrl, `CREATE ROLE ${login.username} LOGIN ${attributes} PASSWORD '${login.password}'`);
  cleanups.push(() => sql(adminUrl, `DROP ROLE IF EXISTS ${login.username}`));
  return login;
}


// Also needs TEST_SUPERUSER_DATABASE_URL, a superuser login (.ci/run creates concord_super): without it this skips, and CI fails on the skip.
describe.skipIf(!superuserUrl || !postgresUrl)(postgresTitle('production refuses a login role that row-level security does not hold'), () => {
  it('a superuser DATABASE_URL: exit 1 with one line saying to move it to MIGRATION_DATABASE_URL and log in as a member of concord_app; nothing is migrated', async () => {
    const { env, databaseUrl } = await database();
    const superuser = new URL(superuserUrl!);
    const refused = await refusedStart({ ...env, ...production, DATABASE_URL: as(databaseUrl!, { username: superuser.username, password: superuser.password }) });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`DATABASE_URL logs in as "${superuser.username}", a superuser`));
    expect(refused.stderr).toMatch(/move that URL to MIGRATION_DATABASE_URL and set DATABASE_URL to a role without SUPERUSER or BYPASSRLS/);
    // Refused before anything was written.
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    const { rows } = await client.query(`SELECT to_regclass('public.schema_migrations') AS migrations`);
    await client.end();
    expect(rows).toEqual([{ migrations: null }]);
  });

  it('a BYPASSRLS DATABASE_URL is refused the same way, also beside a MIGRATION_DATABASE_URL', async () => {
    const { env, databaseUrl } = await database();
    const bypassing = await loginRole(superuserUrl!, 'BYPASSRLS');
    const refused = await refusedStart({ ...env, ...production, DATABASE_URL: as(databaseUrl!, bypassing), MIGRATION_DATABASE_URL: databaseUrl! });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`DATABASE_URL logs in as "${bypassing.username}", a role with BYPASSRLS`));
  });
});

describe.skipIf(!postgresUrl)(postgresTitle('production starts with a login role that row-level security holds'), () => {
  it('the owner of the tables (no superuser), and a member of concord_app beside the owner as MIGRATION_DATABASE_URL', async () => {
    const { env, databaseUrl } = await database();
    const owner = await new ServerProcess({ ...env, ...production }).start();
    expect((await owner.get('/readyz')).status).toBe(200);
    await owner.stop();

    const member = await loginRole(databaseUrl!, '');
    await sql(databaseUrl!, `GRANT concord_app TO ${member.username}`);
    const separated = await new ServerProcess({ ...env, ...production, DATABASE_URL: as(databaseUrl!, member), MIGRATION_DATABASE_URL: databaseUrl! }).start();
    cleanups.push(() => separated.stop());
    expect((await separated.get('/readyz')).status).toBe(200);
  });
});
