import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import pg from 'pg';
import { AmbiguousCommitError, enterTenant, type Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { clientSql } from '../src/db/postgres.ts';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { createLogger } from '../src/log.ts';
import { createMetrics } from '../src/metrics.ts';
import { UpdateLog } from '../src/persistence/update-log.ts';
import { CommitPipeline } from '../src/commit/pipeline.ts';
import { PostgresStorage } from '../src/storage/postgres.ts';
import { createStorage, NEEDS_POSTGRES, postgresUrl, type TestStorage } from './support/database.ts';
import { loggedUpdates, openMigratedDatabase, openTestDatabase } from './support/inspect.ts';

/** An update log on `db` whose commits write nothing besides the log. */
function updateLogOn(db: Database): UpdateLog {
  const log = createLogger('silent');
  const metrics = createMetrics();
  return new UpdateLog({ storage: new PostgresStorage(db), log, metrics, batchMax: 100, batchMaxBytes: 1 << 20, pipeline: new CommitPipeline({ writers: [], log, metrics }) });
}

/**
 * A real database whose connection "fails" on cue: either right after a
 * transaction really committed (the outcome is lost), or before anything is sent.
 */
function flaky(db: Database) {
  const script: Array<'lose-outcome' | 'fail'> = [];
  const wrapped: Database = {
    ...db,
    async transaction(tenant, work) {
      const next = script.shift();
      if (next === 'fail') throw new Error('connection refused');
      const result = await db.transaction(tenant, work);
      if (next === 'lose-outcome') throw new AmbiguousCommitError(new Error('connection lost during COMMIT'));
      return result;
    },
  };
  return { db: wrapped, script };
}

function edit(doc: Y.Doc, value: number): Uint8Array {
  let update: Uint8Array | undefined;
  doc.once('update', (u: Uint8Array) => (update = u));
  doc.getArray<number>('edits').push([value]);
  return update!;
}

describe('update log', () => {
  let storage: TestStorage;
  let db: Database;

  beforeAll(async () => {
    storage = await createStorage('pglite');
    db = await openMigratedDatabase(storage);
  });
  afterAll(async () => {
    await db?.close();
    await storage?.drop();
  });

  it('a commit whose outcome was lost is looked up, even when the lookup fails first, and never logged twice', async () => {
    const { db: flakyDb, script } = flaky(db);
    const log = updateLogOn(flakyDb);
    const document = parseDocumentName('acme/quote/lost-outcome');
    const doc = new Y.Doc();
    const first = await log.append({ document, update: edit(doc, 1), userId: 'alice', origin: 'client', receivedAt: new Date() });
    expect(first).toBe(1);

    // Commits for real, then reports the connection lost; the first lookup fails too.
    script.push('lose-outcome', 'fail');
    const seqs = await Promise.all([2, 3, 4].map((value) => log.append({ document, update: edit(doc, value), userId: 'alice', origin: 'client', receivedAt: new Date() })));
    expect(seqs).toEqual([2, 3, 4]);
    expect(log.healthy).toBe(true);

    // A batch that really failed is written on the retry.
    script.push('fail');
    expect(await log.append({ document, update: edit(doc, 5), userId: 'bob', origin: 'client', receivedAt: new Date() })).toBe(5);

    const rows = await loggedUpdates(db, 'acme', document.name);
    expect(rows.map((row) => row.seq)).toEqual([1, 2, 3, 4, 5]);
    const replayed = new Y.Doc();
    for (const row of rows) Y.applyUpdate(replayed, row.update);
    expect(replayed.getArray('edits').toArray()).toEqual([1, 2, 3, 4, 5]);
    log.close();
  });

  it('keeps the receive time of each update, not the time of the commit', async () => {
    const log = updateLogOn(db);
    const document = parseDocumentName('acme/quote/received-at');
    const receivedAt = new Date(Date.now() - 60_000);
    await log.append({ document, update: edit(new Y.Doc(), 1), userId: 'alice', origin: 'client', receivedAt });
    const stored = await db.transaction('acme', async (sql) => (await sql.query<{ received_at: Date }>('SELECT received_at FROM document_updates WHERE name = $1', [document.name])).rows);
    expect(new Date(stored[0]!.received_at).getTime()).toBe(receivedAt.getTime());
    log.close();
  });

  it('a lost COMMIT that is still in flight is waited for, not raced, on PostgreSQL', async ({ skip }) => {
    skip(!postgresUrl, NEEDS_POSTGRES);
    const pgStorage = await createStorage('postgres');
    const pgDb = await openTestDatabase(pgStorage);
    try {
      await migrate(pgDb);
      const document = parseDocumentName('acme/quote/in-flight');
      const doc = new Y.Doc();
      const log = updateLogOn(pgDb);
      await log.append({ document, update: edit(doc, 1), userId: 'alice', origin: 'client', receivedAt: new Date() });

      // The next write is really made on its own connection, whose COMMIT lands
      // only 600 ms after the log was told the outcome is unknown.
      let slowCommit: Promise<unknown> | undefined;
      const racing: Database = {
        ...pgDb,
        async transaction(tenant, work) {
          if (slowCommit) return pgDb.transaction(tenant, work);
          const client = new pg.Client({ connectionString: pgStorage.databaseUrl });
          await client.connect();
          await client.query('BEGIN');
          // Without execThenCommit, so that the COMMIT below is the one that lands it.
          const sql = { ...clientSql(client), execThenCommit: undefined };
          await enterTenant(sql, tenant);
          await work(sql);
          slowCommit = new Promise((resolve) => setTimeout(resolve, 600)).then(() => client.query('COMMIT')).finally(() => client.end());
          throw new AmbiguousCommitError(new Error('connection lost during COMMIT'));
        },
      };
      const racingLog = updateLogOn(racing);
      racingLog.noteVersion(document.name, 1);
      const seq = await racingLog.append({ document, update: edit(doc, 2), userId: 'alice', origin: 'client', receivedAt: new Date() });
      await slowCommit;
      expect(seq).toBe(2);
      const rows = await loggedUpdates(pgDb, 'acme', document.name);
      expect(rows.map((row) => row.seq)).toEqual([1, 2]);
      log.close();
      racingLog.close();
    } finally {
      await pgDb.close();
      await pgStorage.drop();
    }
  });
});
