import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * Where a test's (or benchmark's) server keeps its data: a fresh PostgreSQL
 * database on the server `adminUrl` points at (TEST_DATABASE_URL by default),
 * created here and dropped by `drop`, or a fresh DATA_DIR for the embedded PGlite.
 */
export interface TestStorage {
  kind: 'postgres' | 'pglite';
  dataDir: string;
  databaseUrl?: string;
  /** PGlite: where a running server answers a test's statements (test/support/pglite-window.ts). */
  windowPort?: number;
  /** The env a server started on this storage needs. */
  env: Record<string, string>;
  drop(): Promise<void>;
}

export const postgresUrl = process.env.TEST_DATABASE_URL || undefined;

/**
 * What every test that needs a real PostgreSQL says when it is skipped (in its
 * title or its skip note): the run's summary (test/support/skip-summary.ts)
 * counts skipped tests by it, and CI (.ci/check-results.ts) leaves it out of
 * titles to match a test across its PostgreSQL and PGlite passes.
 */
export const NEEDS_POSTGRES = 'needs PostgreSQL: set TEST_DATABASE_URL';

/** Why a PostgreSQL-only test is skipped in this run: NEEDS_POSTGRES without TEST_DATABASE_URL, else ''. */
export const postgresSkip = postgresUrl ? '' : NEEDS_POSTGRES;

/** The title of a suite that needs PostgreSQL; naming the reason when it is skipped. */
export function postgresTitle(title: string): string {
  return postgresUrl ? title : `${title} [${NEEDS_POSTGRES}]`;
}

/** Both backends, for suites that run on each; PostgreSQL's reason to skip when TEST_DATABASE_URL is not set. */
export const backends = [
  { kind: 'pglite' as const, reason: '' },
  { kind: 'postgres' as const, reason: postgresSkip },
];

export async function createStorage(kind: 'postgres' | 'pglite' = postgresUrl ? 'postgres' : 'pglite', adminUrl = postgresUrl): Promise<TestStorage> {
  const dataDir = mkdtempSync(join(tmpdir(), 'concord-test-'));
  if (kind === 'pglite') {
    return { kind, dataDir, env: { DATA_DIR: dataDir }, drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  if (!adminUrl) throw new Error('TEST_DATABASE_URL is not set');
  const database = `concord_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(adminUrl, `CREATE DATABASE ${database}`);
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  const databaseUrl = url.toString();
  return {
    kind,
    dataDir,
    databaseUrl,
    env: { DATA_DIR: dataDir, DATABASE_URL: databaseUrl },
    async drop() {
      await dropDatabase(adminUrl, database);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Storage a test reads (with `openTestDatabase`) while a server runs on it.
 * PGlite is the server process's alone, so there the server opens a window
 * for the test (test/support/pglite-window.ts).
 */
export async function createReadableStorage(kind?: 'postgres' | 'pglite'): Promise<TestStorage> {
  const storage = await createStorage(kind);
  if (storage.kind !== 'pglite') return storage;
  const windowPort = await freePort();
  const window = `--import=${new URL('./pglite-window.ts', import.meta.url).href}`;
  const NODE_OPTIONS = [process.env.NODE_OPTIONS, window].filter(Boolean).join(' ');
  return { ...storage, windowPort, env: { ...storage.env, PGLITE_WINDOW_PORT: String(windowPort), NODE_OPTIONS } };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * DROP ... WITH (FORCE) refuses (42501) to end an autovacuum worker for a role
 * that is not a member of pg_signal_backend (.ci/run grants it); such a worker
 * is done within seconds, so the drop is tried again meanwhile.
 */
async function dropDatabase(adminUrl: string, database: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    } catch (error) {
      if ((error as { code?: string }).code !== '42501' || attempt === 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

async function adminQuery(adminUrl: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
