import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as Y from 'yjs';
import pg from 'pg';
import { AmbiguousCommitError, enterTenant, type Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { clientSql } from '../src/db/postgres.ts';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { createLogger } from '../src/log.ts';
import { createMetrics, type Metrics } from '../src/metrics.ts';
import { UpdateLog } from '../src/persistence/update-log.ts';
import { CommitPipeline } from '../src/commit/pipeline.ts';
import type { CommitWriter, UpdateChanges } from '../src/commit/writer.ts';
import { PostgresStorage } from '../src/storage/postgres.ts';
import { backends, createStorage, NEEDS_POSTGRES, postgresUrl, type TestStorage } from './support/database.ts';
import { loggedUpdates, openMigratedDatabase, openTestDatabase, rowsOf, suiteDatabase } from './support/inspect.ts';

/** An update log on `db` whose commits write `writers`' rows besides the log (none unless given). */
function updateLogOn(db: Database, { writers = [] as CommitWriter[], metrics = createMetrics(), log = createLogger('silent') } = {}): UpdateLog {
  return new UpdateLog({ storage: new PostgresStorage(db), log, metrics, batchMax: 100, batchMaxBytes: 1 << 20, pipeline: new CommitPipeline({ writers, log, metrics }) });
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

/**
 * A writer that records the seq it is given for each update beside the update
 * itself (table written_seqs), so a test can compare it with the seq the log
 * holds for that update.
 */
const seqRecorder: CommitWriter = {
  name: 'seq-recorder',
  prepare: (entries) => ({
    statements: entries.map(({ update, seq }) => ({ text: 'INSERT INTO written_seqs (name, seq, update) VALUES ($1, $2, $3)', params: [update.document.name, seq, update.update] })),
    committed: () => {},
  }),
  forget: () => {},
};

async function predictions(metrics: Metrics): Promise<Record<string, number>> {
  return Object.fromEntries((await metrics.seqPredictions.get()).values.map(({ labels, value }) => [labels.outcome, value]));
}

describe.each(backends)('a commit on predicted seqs on $kind', ({ kind, reason }) => {
  let db: Database;
  suiteDatabase(kind, reason, async (opened) => {
    db = opened;
    await db.ownerTransaction((sql) =>
      // No key: a row at a seq taken twice must show, not be refused. One row is refused, for a test of refusals.
      sql.exec(`CREATE TABLE written_seqs (name text, seq bigint, update bytea, CONSTRAINT refused CHECK (NOT (name = 'acme/quote/refused-b' AND seq = 2)));
                GRANT SELECT, INSERT ON written_seqs TO concord_app`),
    );
  });

  // With changes (none to read here), so that the writer is given the update.
  const append = (log: UpdateLog, name: string, update: Uint8Array) =>
    log.append({ document: parseDocumentName(name), update, userId: 'alice', origin: 'client', receivedAt: new Date(), changes: {} as UpdateChanges });

  /** One instance's log, its writer recording each seq it is given, and the metrics counting its predictions. */
  function recordingLog(log = createLogger('silent')) {
    const metrics = createMetrics();
    return { metrics, log: updateLogOn(db, { writers: [seqRecorder], metrics, log }) };
  }

  /** Another writer (another instance, or the API) logs `update`: the seqs it got. */
  const logElsewhere = (name: string, update: Uint8Array) =>
    new PostgresStorage(db).append('acme', [{ document: parseDocumentName(name), update, userId: 'bob', origin: 'api', receivedAt: new Date() }]);

  /** Every update of `name` is logged once, seqs without a gap, and the writer was given, for each one it wrote, the seq the log holds. */
  async function expectExact(name: string, updates: Uint8Array[]) {
    const logged = await loggedUpdates(db, 'acme', name);
    expect(logged.map((row) => row.seq)).toEqual(updates.map((_, index) => index + 1));
    expect(new Set(logged.map((row) => Buffer.from(row.update).toString('hex')))).toEqual(new Set(updates.map((update) => Buffer.from(update).toString('hex'))));
    const [counts] = await rowsOf<{ written: number; matching: number }>(
      db,
      'acme',
      `SELECT (SELECT count(*)::int FROM written_seqs WHERE name = $1) AS written,
              (SELECT count(*)::int FROM written_seqs w JOIN document_updates u ON u.name = w.name AND u.seq = w.seq AND u.update = w.update WHERE w.name = $1) AS matching`,
      [name],
    );
    return counts;
  }

  it('goes in one round trip on the seqs the log knows; after another writer logged the document, it is sent again the longer way, and so is the next, each update logged once', async ({ skip }) => {
    skip(!!reason, reason);
    const { metrics, log } = recordingLog();
    const name = 'acme/quote/predicted';
    const doc = new Y.Doc();
    const updates = [1, 2, 3, 4, 5, 6].map((value) => edit(doc, value));

    expect(await append(log, name, updates[0]!)).toBe(1); // its version is not known here yet: the longer way
    expect(await append(log, name, updates[1]!)).toBe(2);
    expect(await predictions(metrics)).toEqual({ held: 1 });

    // Another instance (or the API) logs the next update: the seq this log would predict is taken.
    expect(await logElsewhere(name, updates[2]!)).toEqual([3]);
    expect(await append(log, name, updates[3]!)).toBe(4);
    expect(await predictions(metrics)).toEqual({ held: 1, missed: 1 });
    // Having missed, the document goes the longer way at once, until a commit finds no one else logged it in between.
    expect(await append(log, name, updates[4]!)).toBe(5);
    expect(await predictions(metrics)).toEqual({ held: 1, missed: 1 });

    const sent = vi.spyOn(pg.Client.prototype, 'query');
    try {
      expect(await append(log, name, updates[5]!)).toBe(6);
      // BEGIN, the tenant, the append, its check, the writers' rows and COMMIT: one round trip once prepared.
      if (kind === 'postgres') expect(sent).toHaveBeenCalledTimes(1);
    } finally {
      sent.mockRestore();
    }
    expect(await predictions(metrics)).toEqual({ held: 2, missed: 1 });
    // Every update but the other writer's has its writer row, at the seq the log holds.
    expect(await expectExact(name, updates)).toEqual({ written: 5, matching: 5 });
    log.close();
  });

  it('a document loaded before it was ever written has its first commit predicted too; one another writer created first goes the longer way', async ({ skip }) => {
    skip(!!reason, reason);
    const { metrics, log } = recordingLog();
    const [alone, taken] = ['acme/quote/new-alone', 'acme/quote/new-taken'];
    // What loading a document that was never written tells the log.
    for (const name of [alone, taken]) log.noteVersion(name, 0);
    const [aloneDoc, takenDoc] = [new Y.Doc(), new Y.Doc()];
    const aloneUpdate = edit(aloneDoc, 1);
    const takenUpdates = [edit(takenDoc, 1), edit(takenDoc, 2)];

    expect(await append(log, alone, aloneUpdate)).toBe(1);
    expect(await predictions(metrics)).toEqual({ held: 1 });
    expect(await logElsewhere(taken, takenUpdates[0]!)).toEqual([1]);
    expect(await append(log, taken, takenUpdates[1]!)).toBe(2);
    expect(await predictions(metrics)).toEqual({ held: 1, missed: 1 });
    expect(await expectExact(alone, [aloneUpdate])).toEqual({ written: 1, matching: 1 });
    expect(await expectExact(taken, takenUpdates)).toEqual({ written: 1, matching: 1 });
    log.close();
  });

  it('two logs (two instances) writing one document, in turn and at once: every update logged once, without a gap, each writer row at its update\'s seq; predicted again once one writes alone', async ({ skip }) => {
    skip(!!reason, reason);
    const instances = [recordingLog(), recordingLog()];
    const [metrics, logs] = [instances.map((instance) => instance.metrics), instances.map((instance) => instance.log)];
    const name = 'acme/quote/two-logs';
    const doc = new Y.Doc();
    const updates: Uint8Array[] = [];
    // In turn: after its first commit each log always predicts the seq the other just took.
    for (let round = 0; round < 5; round++) {
      for (const log of logs) {
        const update = edit(doc, updates.length);
        updates.push(update);
        await append(log, name, update);
      }
    }
    // Each missed once; from then on the document was contended, so its commits went the longer way at once.
    expect(await Promise.all(metrics.map(predictions))).toEqual([{ missed: 1 }, { missed: 1 }]);
    // At once: batches of each log race for the document's row.
    const burst = Array.from({ length: 40 }, () => edit(doc, updates.length));
    updates.push(...burst);
    await Promise.all(burst.map((update, index) => append(logs[index % 2]!, name, update)));
    // One log alone again: its first commit finds the other's last updates, its second that no one else logged the
    // document in between, and its third is predicted again.
    const heldBefore = (await predictions(metrics[0]!)).held ?? 0;
    for (let alone = 0; alone < 3; alone++) {
      const update = edit(doc, updates.length);
      updates.push(update);
      await append(logs[0]!, name, update);
    }
    expect((await predictions(metrics[0]!)).held).toBeGreaterThan(heldBefore);
    expect(await expectExact(name, updates)).toEqual({ written: updates.length, matching: updates.length });
    for (const log of logs) log.close();
  });

  it('an update whose changes could not be read goes in the same round trip: logged, its document marked for its tables to be rebuilt, no writer row', async ({ skip }) => {
    skip(!!reason, reason);
    const { metrics, log } = recordingLog();
    const name = 'acme/quote/untracked';
    const doc = new Y.Doc();
    const updates = [edit(doc, 1), edit(doc, 2)];
    await append(log, name, updates[0]!);
    expect(await log.append({ document: parseDocumentName(name), update: updates[1]!, userId: 'alice', origin: 'client', receivedAt: new Date() })).toBe(2);
    expect(await predictions(metrics)).toEqual({ held: 1 });
    expect(await expectExact(name, updates)).toEqual({ written: 1, matching: 1 });
    expect(await rowsOf(db, 'acme', 'SELECT tables_stale FROM documents WHERE name = $1', [name])).toEqual([{ tables_stale: true }]);
    log.close();
  });

  it('writes Postgres refuses in a commit on predicted seqs are rolled back with its append; the longer way then logs every update once and marks the refused document', async ({ skip }) => {
    skip(!!reason, reason);
    const errors = vi.fn();
    const logger = createLogger('silent');
    logger.error = errors as never;
    const { metrics, log } = recordingLog(logger);
    const [a, b] = ['acme/quote/refused-a', 'acme/quote/refused-b'];
    const docs = [new Y.Doc(), new Y.Doc()];
    const first = docs.map((doc) => edit(doc, 1));
    await Promise.all([append(log, a, first[0]!), append(log, b, first[1]!)]);
    // The writer's row for b's next update breaks a check of the table: Postgres refuses it.
    const second = docs.map((doc) => edit(doc, 2));
    expect(await Promise.all([append(log, a, second[0]!), append(log, b, second[1]!)])).toEqual([2, 2]);

    expect(await predictions(metrics)).toEqual({ missed: 1 });
    expect(await expectExact(a, [first[0]!, second[0]!])).toEqual({ written: 2, matching: 2 });
    expect(await expectExact(b, [first[1]!, second[1]!])).toEqual({ written: 1, matching: 1 });
    const stale = await rowsOf<{ name: string; tables_stale: boolean }>(db, 'acme', 'SELECT name, tables_stale FROM documents WHERE name = ANY($1) ORDER BY name', [[a, b]]);
    expect(stale).toEqual([
      { name: a, tables_stale: false },
      { name: b, tables_stale: true },
    ]);
    expect(errors).toHaveBeenCalledWith(expect.objectContaining({ code: 'projection-failed', document: b }), expect.any(String));
    log.close();
  });
});
