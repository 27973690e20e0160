import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AmbiguousCommitError, inlineParameters, runTogether, type Database, type Sql, type Statement } from '../src/db/database.ts';
import { CommitPipeline } from '../src/commit/pipeline.ts';
import type { CommitWriter, UpdateChanges } from '../src/commit/writer.ts';
import { extendFieldChanges } from '../src/db/field-changes.ts';
import { pgJson, toPgJson } from '../src/db/json.ts';
import { deleteMembers, upsertRows } from '../src/db/tables.ts';
import { kindOf, parseDocumentName } from '../src/documents/kinds.ts';
import { createLogger } from '../src/log.ts';
import { createMetrics } from '../src/metrics.ts';
import { backends, createStorage, NEEDS_POSTGRES, postgresUrl, type TestStorage } from './support/database.ts';
import { openTestDatabase, suiteDatabase } from './support/inspect.ts';


// Values that break naive quoting: quotes, backslashes, escapes as text, what looks like a parameter, non-ASCII.
const awkward = ["it's", 'C:\\temp\\new', '\\x00 and \\u0000 as text', 'E\'\'', '$1 and $2', '"quoted" — ü 😀', "'; DROP TABLE notes; --"];

describe.each(backends)('statements run together on $kind', ({ kind, reason }) => {
  let db: Database;
  // Migrated: the commit pipeline's fallbacks mark documents.
  suiteDatabase(kind, reason, async (opened) => {
    db = opened;
    await db.ownerTransaction((sql) => sql.exec('CREATE TABLE notes (id integer PRIMARY KEY, body jsonb NOT NULL)'));
  });

  const insert = (id: number, body: unknown): Statement => ({ text: 'INSERT INTO notes (id, body) VALUES ($1, $2::jsonb) RETURNING id, body', params: [id, pgJson(body)] });

  it('sends several statements at once, values inlined exactly, and answers each one\'s rows in order', async ({ skip }) => {
    skip(!!reason, reason);
    const results = await db.ownerTransaction((sql) => runTogether(sql, [insert(1, awkward), { text: 'SELECT count(*)::int AS n FROM notes', params: [] }, insert(2, { text: awkward.join('') })]));
    expect(results.map((result) => result.rows)).toEqual([[{ id: 1, body: awkward }], [{ n: 1 }], [{ id: 2, body: { text: awkward.join('') } }]]);
  });

  it('fails as a whole when one statement fails, so the caller can roll back', async ({ skip }) => {
    skip(!!reason, reason);
    await expect(db.ownerTransaction((sql) => runTogether(sql, [insert(3, 'kept?'), insert(1, 'a duplicate id')]))).rejects.toThrow(/duplicate key/);
    const ids = await db.ownerTransaction(async (sql) => (await sql.query<{ id: number }>('SELECT id FROM notes ORDER BY id')).rows.map((row) => row.id));
    expect(ids).toEqual([1, 2]);
  });

  it('a transaction\'s first statement, sent with its BEGIN and its parameters inlined, reads exactly as when sent with parameters', async ({ skip }) => {
    skip(!!reason, reason);
    const text = 'SELECT $1::text[] AS texts, $2::bytea AS bytes, $3::timestamptz AS at, $4::jsonb AS body, $5::int AS n, $6::text AS missing';
    const params = [[...awkward, 'a,b', '{x}', ''], new Uint8Array([0, 39, 92, 255]), new Date('2026-11-28T10:00:00.123Z'), pgJson({ awkward }), 42, null];
    const [first, again] = await db.ownerTransaction(async (sql) => [(await sql.query(text, params)).rows, (await sql.query(text, params)).rows]);
    expect(first).toEqual(again);
    const { bytes, ...rest } = first[0] as { bytes: Uint8Array };
    expect([...bytes]).toEqual([0, 39, 92, 255]);
    expect(rest).toEqual({ texts: [...awkward, 'a,b', '{x}', ''], at: new Date('2026-11-28T10:00:00.123Z'), body: { awkward }, n: 42, missing: null });
  });

  it('the last statements of a transaction carry its COMMIT: once they are prepared, on PostgreSQL the whole transaction is one round trip', async ({ skip }) => {
    skip(!!reason, reason);
    const last = (id: number) => db.ownerTransaction((sql) => runTogether(sql, [insert(id, 'last'), { text: `SELECT count(*)::int AS n FROM notes WHERE id = ${id}`, params: [] }], { lastInTransaction: true }));
    await last(19);
    const sent = vi.spyOn(pg.Client.prototype, 'query');
    try {
      const results = await last(20);
      expect(results.map((result) => result.rows)).toEqual([[{ id: 20, body: 'last' }], [{ n: 1 }]]);
      if (kind === 'postgres') expect(sent).toHaveBeenCalledTimes(1);
    } finally {
      sent.mockRestore();
    }
    const stored = await db.ownerTransaction(async (sql) => (await sql.query('SELECT body FROM notes WHERE id = 20')).rows);
    expect(stored).toEqual([{ body: 'last' }]);
  });

  it('statements with parameters are prepared once per session and run with their values exact each time', async ({ skip }) => {
    skip(!!reason, reason);
    const text = 'SELECT $1::text[] AS texts, $2::jsonb AS body, $3::bytea AS bytes';
    const savepoint = { text: 'SAVEPOINT unprepared', params: [] };
    const run = async (sql: Sql, value: string) => (await runTogether(sql, [{ text, params: [[value, ...awkward], pgJson({ value }), new Uint8Array([0, 39, 92])] }, savepoint]))[0]!.rows;
    const [first, second, preparedTexts] = await db.ownerTransaction(async (sql) => {
      const results = [await run(sql, 'first'), await run(sql, "second's")] as const;
      const { rows } = await sql.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements');
      return [...results, rows.map((row) => row.statement)] as const;
    });
    expect(first).toEqual([{ texts: ['first', ...awkward], body: { value: 'first' }, bytes: expect.anything() }]);
    expect(second).toEqual([{ texts: ["second's", ...awkward], body: { value: "second's" }, bytes: expect.anything() }]);
    expect([...(second[0] as { bytes: Uint8Array }).bytes]).toEqual([0, 39, 92]);
    expect(preparedTexts.filter((statement) => statement.includes(`AS ${text}`))).toHaveLength(1);
    expect(preparedTexts.some((statement) => statement.includes('SAVEPOINT unprepared'))).toBe(false);
  });

  it('a statement prepared before a rollback to a savepoint stays prepared; one whose PREPARE was refused is prepared next time', async ({ skip }) => {
    skip(!!reason, reason);
    const upsert = (id: number, body: string, alias = 'body'): Statement => ({
      text: `INSERT INTO notes (id, body) VALUES ($1, $2::jsonb) ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body RETURNING body AS ${alias}`,
      params: [id, pgJson(body)],
    });
    // One transaction, so one connection: what it prepared is what the next statements find.
    const bodies = await db.ownerTransaction(async (sql) => {
      await sql.query('SAVEPOINT first');
      await runTogether(sql, [upsert(40, 'rolled back')]);
      await sql.query('ROLLBACK TO SAVEPOINT first');
      const afterRollback = (await runTogether(sql, [upsert(40, 'after the rollback')]))[0]!.rows;
      // A transaction a refused statement left failed refuses the PREPARE too.
      await sql.query('SAVEPOINT second');
      await expect(sql.exec('SELECT 1/0')).rejects.toThrow(/division by zero/);
      await expect(runTogether(sql, [upsert(41, 'refused', 'refused_body')])).rejects.toThrow(/aborted/);
      await sql.query('ROLLBACK TO SAVEPOINT second');
      const afterRefusal = (await runTogether(sql, [upsert(41, 'after the refusal', 'refused_body')]))[0]!.rows;
      return [...afterRollback, ...afterRefusal];
    });
    expect(bodies).toEqual([{ body: 'after the rollback' }, { refused_body: 'after the refusal' }]);
  });

  it('a statement Postgres refuses to prepare (a bug: a column that does not exist) is refused where it runs, after the pipeline\'s savepoint: the rest is committed', async ({ skip }) => {
    skip(!!reason, reason);
    const broken: CommitWriter = {
      name: 'broken',
      prepare: () => ({ statements: [{ text: 'INSERT INTO notes (id, no_such_column) VALUES ($1, $2)', params: [26, 'x'] }], committed: () => {} }),
      forget: () => {},
    };
    const log = createLogger('silent');
    const errors = vi.spyOn(log, 'error');
    const pipeline = new CommitPipeline({ writers: [broken], log, metrics: createMetrics() });
    const entry = { update: { document: parseDocumentName('acme/quote/broken'), update: new Uint8Array(), userId: 'alice', origin: 'client' as const, receivedAt: new Date() }, seq: 1, changes: {} as UpdateChanges, newerQueued: () => false };
    await db.ownerTransaction(async (sql) => {
      await runTogether(sql, [insert(27, 'written before the pipeline, as the log rows are')]);
      return pipeline.write(sql, [entry], { lastInTransaction: true });
    });
    const ids = await db.ownerTransaction(async (sql) => (await sql.query<{ id: number }>('SELECT id FROM notes WHERE id BETWEEN 26 AND 27 ORDER BY id')).rows.map((row) => row.id));
    expect(ids).toEqual([27]);
    expect(errors).toHaveBeenCalledWith(expect.objectContaining({ code: 'projection-failed', document: 'acme/quote/broken' }), expect.any(String));
  });

  it('a document\'s writes that fail before they are sent never roll back another document\'s: the commit fails, to be retried, instead of landing without them', async ({ skip }) => {
    skip(!!reason, reason);
    // Together the two documents' rows collide, so each document's writes are tried alone; b's then fail while its statement is prepared.
    const textOf = (name: string) => `INSERT INTO notes (id, body) VALUES ($1, $2::jsonb) -- ${name}`;
    const perDocument: CommitWriter = {
      name: 'per-document',
      prepare: (entries) => ({ statements: entries.map(({ update }) => ({ text: textOf(update.document.name), params: [60, pgJson(update.document.name)] })), committed: () => {} }),
      forget: () => {},
    };
    const pipeline = new CommitPipeline({ writers: [perDocument], log: createLogger('silent'), metrics: createMetrics() });
    const entry = (name: string) => ({ update: { document: parseDocumentName(name), update: new Uint8Array(), userId: 'alice', origin: 'client' as const, receivedAt: new Date() }, seq: 1, changes: {} as UpdateChanges, newerQueued: () => false });
    const outcome = await db
      .ownerTransaction(async (sql) => {
        let preparedB = 0;
        const failingB: Sql = {
          ...sql,
          prepare: async (text) => {
            if (text === textOf('acme/quote/savepoint-b') && ++preparedB === 2) throw new Error('the connection failed while preparing');
            return sql.prepare!(text);
          },
        };
        await pipeline.write(failingB, [entry('acme/quote/savepoint-a'), entry('acme/quote/savepoint-b')]);
      })
      .then(
        () => 'committed',
        () => 'failed',
      );
    const stored = await db.ownerTransaction(async (sql) => (await sql.query('SELECT body FROM notes WHERE id = 60')).rows);
    expect([outcome, stored]).toEqual(['failed', []]);
  });

  it('when one of those statements is refused, COMMIT never ran: the transaction rolls back to a savepoint and goes on', async ({ skip }) => {
    skip(!!reason, reason);
    await db.ownerTransaction(async (sql) => {
      await sql.query('SAVEPOINT before_last');
      await expect(runTogether(sql, [insert(21, 'refused with the next'), insert(1, 'a duplicate id')], { lastInTransaction: true })).rejects.toThrow(/duplicate key/);
      await sql.query('ROLLBACK TO SAVEPOINT before_last');
      await runTogether(sql, [insert(22, 'after the refusal')]);
    });
    const ids = await db.ownerTransaction(async (sql) => (await sql.query<{ id: number }>('SELECT id FROM notes WHERE id BETWEEN 21 AND 22 ORDER BY id')).rows.map((row) => row.id));
    expect(ids).toEqual([22]);
  });

  it('a transaction left failed by a refused statement is never reported committed', async ({ skip }) => {
    skip(!!reason, reason);
    const swallowed = db.ownerTransaction(async (sql) => {
      await runTogether(sql, [insert(23, 'lost with the transaction')]);
      await runTogether(sql, [insert(1, 'a duplicate id')]).catch(() => {});
    });
    await expect(swallowed).rejects.toThrow();
    const ids = await db.ownerTransaction(async (sql) => (await sql.query<{ id: number }>('SELECT id FROM notes WHERE id = 23')).rows);
    expect(ids).toEqual([]);
  });

  it('a commit whose COMMIT itself is refused fails as a whole: the pipeline\'s fallbacks cannot run after it, and nothing is stored', async ({ skip }) => {
    skip(!!reason, reason);
    // A deferred unique constraint is checked at COMMIT, after every statement of the script passed.
    await db.ownerTransaction((sql) => sql.exec('CREATE TABLE deferred_notes (id integer, CONSTRAINT one_note_per_id UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)'));
    const log = createLogger('silent');
    const twice: CommitWriter = {
      name: 'twice',
      prepare: () => ({ statements: [1, 1].map((id) => ({ text: 'INSERT INTO deferred_notes (id) VALUES ($1)', params: [id] })), committed: () => {} }),
      forget: () => {},
    };
    const pipeline = new CommitPipeline({ writers: [twice], log, metrics: createMetrics() });
    const entry = { update: { document: parseDocumentName('acme/quote/deferred'), update: new Uint8Array(), userId: 'alice', origin: 'client' as const, receivedAt: new Date() }, seq: 1, changes: {} as UpdateChanges, newerQueued: () => false };
    // On PostgreSQL the rollback to the savepoint finds the transaction ended, and no fallback runs; on PGlite its own
    // COMMIT is refused. Either way the refusal that ended it is what the commit fails with.
    await expect(db.ownerTransaction((sql) => pipeline.write(sql, [entry], { lastInTransaction: true }))).rejects.toThrow(/one_note_per_id/);
    const stored = await db.ownerTransaction(async (sql) => (await sql.query('SELECT id FROM deferred_notes')).rows);
    expect(stored).toEqual([]);
  });
});

describe('statements on PostgreSQL alone', () => {
  let storage: TestStorage | undefined;
  let db: Database;

  beforeAll(async () => {
    if (!postgresUrl) return;
    storage = await createStorage('postgres');
    db = await openTestDatabase(storage);
  });
  afterAll(async () => {
    await db?.close();
    await storage?.drop();
  });

  it('a connection whose prepared statement a migration outdated is refused it, then replaced once its transaction ends: the next one prepares afresh', async ({ skip }) => {
    skip(!postgresUrl, NEEDS_POSTGRES);
    await db.ownerTransaction((sql) => sql.exec('CREATE TABLE drafts (id integer PRIMARY KEY, body integer NOT NULL)'));
    const insertDraft = (id: number): Statement => ({ text: 'INSERT INTO drafts (id, body) VALUES ($1, $2) RETURNING body', params: [id, 7] });
    const write = (id: number) => db.ownerTransaction(async (sql) => (await runTogether(sql, [insertDraft(id)]))[0]!.rows);
    expect(await write(1)).toEqual([{ body: 7 }]);
    // What a rolling deploy's migration may do while connections hold the statement prepared.
    await db.ownerTransaction((sql) => sql.exec('ALTER TABLE drafts ALTER COLUMN body TYPE text'));
    // The commit pipeline's fallbacks go on after such a refusal, so the transaction itself ends well.
    await db.ownerTransaction(async (sql) => {
      await sql.query('SAVEPOINT before_write');
      await expect(runTogether(sql, [insertDraft(2)])).rejects.toThrow(/cached plan must not change result type/);
      await sql.query('ROLLBACK TO SAVEPOINT before_write');
    });
    expect(await write(3)).toEqual([{ body: '7' }]);
  });

  it('a connection lost during the round trip that carries COMMIT may have committed: it is an AmbiguousCommitError', async ({ skip }) => {
    skip(!postgresUrl, NEEDS_POSTGRES);
    let cut: Promise<unknown> | undefined;
    const lost = db.ownerTransaction(async (sql) => {
      const [{ pid }] = (await sql.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows as [{ pid: number }];
      const sleeping = runTogether(sql, [{ text: 'SELECT pg_sleep(5)', params: [] }], { lastInTransaction: true });
      cut = db.ownerTransaction((other) => other.query('SELECT pg_terminate_backend($1)', [pid]));
      return sleeping;
    });
    await expect(lost).rejects.toBeInstanceOf(AmbiguousCommitError);
    await cut;
  });
});

describe('inlined literals', () => {
  it('a parameter holding NUL is refused as a programming error before anything is sent (Postgres text cannot hold it; in a script it would end the statement)', () => {
    expect(() => inlineParameters('SELECT $1::text, $2::text[]', ['fine', ['a\0b']])).toThrow(/parameter \$2 contains NUL/);
    expect(() => inlineParameters('SELECT $1::text', ['a\0b'])).toThrow(/parameter \$1 contains NUL/);
    expect(inlineParameters('SELECT $1::text', ['\\0 as text'])).toBe("SELECT E'\\\\0 as text'::text");
  });
});

describe('jsonb parameters', () => {
  // What Yjs may hand a writer: text Postgres refuses (NUL, lone surrogates), BigInts, values that are not JSON.
  const awkwardText = fc.oneof(fc.string(), fc.constantFrom('\0', 'a\0b', 'x\ud800', '\udc00y', '\ud83d\ude00'));
  const { value } = fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.anything(),
      awkwardText,
      fc.bigInt(),
      fc.double(),
      fc.date(),
      fc.constantFrom(undefined, () => 1, Symbol('s'), new Map([[1, 2]])),
      fc.array(tie('value')),
      fc.dictionary(awkwardText, tie('value')),
    ),
  }));

  it('are the JSON of the value as toPgJson cleans it, whether or not there was anything to clean', () => {
    fc.assert(
      fc.property(value, (input) => {
        const json = pgJson(input);
        expect(json).toBe(JSON.stringify(toPgJson(input)));
        // JSON.stringify escapes these; Postgres's jsonb refuses the escapes.
        expect(json).not.toMatch(/\\u0000|\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/i);
      }),
      { numRuns: 2_000 },
    );
  });

  it('keep a key named __proto__ as a key when they clean a value (an assignment would set the copy\'s prototype)', () => {
    const value = JSON.parse('{"__proto__": [1], "note": "a\\u0000b"}');
    expect(pgJson(value)).toBe('{"__proto__":[1],"note":"a\uFFFDb"}');
    expect(Object.getPrototypeOf(toPgJson(value))).toBe(Object.prototype);
  });

  it('cut off what is nested deeper than 100 levels, clean or not', () => {
    let deep: unknown = 'bottom';
    for (let i = 0; i < 150; i++) deep = i % 2 === 0 ? [deep] : { inner: deep };
    expect(pgJson(deep)).toBe(JSON.stringify(toPgJson(deep)));
    expect(pgJson(deep)).not.toContain('bottom');
  });
});

describe('a table\'s upsert statement', () => {
  const table = { name: 'notes_rows', columns: { id: 'text', body: 'text', updated_at: 'timestamptz' }, key: ['id'] };

  it('leaves the columns kept on conflict alone, whichever of the table\'s statements was built first (each is built once)', () => {
    const overwriting = upsertRows(table, [{ id: 'a', body: 'x', updated_at: null }])!;
    const keeping = upsertRows(table, [{ id: 'a', body: 'x', updated_at: null }], ['updated_at'])!;
    expect(overwriting.text).toContain('"updated_at" = EXCLUDED."updated_at"');
    expect(keeping.text).not.toContain('"updated_at" = EXCLUDED');
    expect(keeping.text).toContain('"body" = EXCLUDED."body"');
    expect(upsertRows(table, [{ id: 'b', body: 'y', updated_at: null }])).toEqual({ text: overwriting.text, params: [pgJson([{ id: 'b', body: 'y', updated_at: null }])] });
  });
});

describe.each(backends)('statements that name rows read only those rows on $kind', ({ kind, reason }) => {
  const ROWS = 2_000;
  const TENANT = 'plans';
  const NAME = 'plans/quote/q1';
  let db: Database;
  suiteDatabase(kind, reason, async (opened) => {
    db = opened;
    // A tenant with many audit rows and quote lines, and statistics that say so, as in production.
    await db.transaction(TENANT, (sql) =>
      sql.exec(`
        INSERT INTO documents (tenant_id, name, kind, doc_id, version) VALUES ('${TENANT}', '${NAME}', 'quote', 'q1', ${ROWS});
        INSERT INTO field_changes (tenant_id, name, seq, first_seq, entity, entity_id, field, action, new_value, user_id, changed_at)
          SELECT '${TENANT}', '${NAME}', s, s, 'quote', 'q1', 'notes', 'update', to_jsonb('text ' || s), 'u1', now() FROM generate_series(1, ${ROWS}) AS s;
        INSERT INTO quotes (tenant_id, id, version, updated_at) VALUES ('${TENANT}', 'q1', ${ROWS}, now());
        INSERT INTO quote_lines (tenant_id, quote_id, id, position, updated_at) SELECT '${TENANT}', 'q1', 'l' || s, s, now() FROM generate_series(1, ${ROWS}) AS s`),
    );
    await db.ownerTransaction((sql) => sql.exec('ANALYZE field_changes; ANALYZE quote_lines'));
  });

  /**
   * Rows the statement's plan read from `table`, running it (and rolling it
   * back): planned for its values, or prepared with a plan for any values,
   * as a session may come to run it (`Sql.prepare`).
   */
  async function rowsRead(statement: Statement, table: string, planned: 'for its values' | 'for any values'): Promise<number> {
    const rolledBack = new Error('roll back');
    let plan: PlanNode | undefined;
    await db
      .transaction(TENANT, async (sql) => {
        let text = statement.text;
        if (planned === 'for any values') {
          await sql.query('SET LOCAL plan_cache_mode = force_generic_plan');
          text = `EXECUTE ${await sql.prepare!(statement.text)}(${statement.params.map((_, index) => `$${index + 1}`).join(', ')})`;
        }
        const [explained] = await sql.exec(`EXPLAIN (ANALYZE, FORMAT JSON) ${inlineParameters(text, statement.params)}`);
        plan = (explained!.rows[0] as { 'QUERY PLAN': [{ Plan: PlanNode }] })['QUERY PLAN'][0].Plan;
        throw rolledBack;
      })
      .catch((error: unknown) => {
        if (error !== rolledBack) throw error;
      });
    const read = (node: PlanNode): number =>
      (node['Relation Name'] === table && node['Node Type'] !== 'ModifyTable' ? node['Actual Rows'] * node['Actual Loops'] : 0) + (node.Plans ?? []).reduce((sum, child) => sum + read(child), 0);
    return read(plan!);
  }

  it('extending a text burst\'s audit row finds it by id, not among every audit row of the tenant', async ({ skip }) => {
    skip(!!reason, reason);
    const ids = await db.transaction(TENANT, async (sql) => (await sql.query<{ id: string }>('SELECT id FROM field_changes ORDER BY id LIMIT 2')).rows.map((row) => Number(row.id)));
    const extension = extendFieldChanges(ids.map((id) => ({ id, seq: ROWS + 1, seqs: [ROWS + 1], new_value: 'longer text', changed_at: new Date().toISOString() })))!;
    expect(await rowsRead(extension, 'field_changes', 'for its values')).toBe(ids.length);
    expect(await rowsRead(extension, 'field_changes', 'for any values')).toBe(ids.length);
  });

  it('deleting quote lines finds them by key, not among every line of the tenant', async ({ skip }) => {
    skip(!!reason, reason);
    const removal = deleteMembers(kindOf('quote').tables.members, [{ parent: 'q1', id: 'l7' }, { parent: 'q1', id: 'l9' }])!;
    expect(await rowsRead(removal, 'quote_lines', 'for its values')).toBe(2);
    expect(await rowsRead(removal, 'quote_lines', 'for any values')).toBe(2);
  });
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  Plans?: PlanNode[];
}
