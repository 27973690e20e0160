import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
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
  /** The env a server started on this storage needs. */
  env: Record<string, string>;
  drop(): Promise<void>;
}

export const postgresUrl = process.env.TEST_DATABASE_URL || undefined;

/** Both backends, for suites that run on each; PostgreSQL's reason to skip when TEST_DATABASE_URL is not set. */
export const backends = [
  { kind: 'pglite' as const, reason: '' },
  { kind: 'postgres' as const, reason: postgresUrl ? '' : 'TEST_DATABASE_URL is not set' },
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
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
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
