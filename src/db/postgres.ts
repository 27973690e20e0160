import pg from 'pg';
import { AmbiguousCommitError, enterTenantStatement, inlineParameters, oneMessage, PreparedStatements, type Database, type ScriptPieces, type Sql } from './database.ts';
import type { Logger } from '../log.ts';

// int8 (bigint) columns hold seq and version: well within 2^53, read them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

/** How long a query may go unanswered before it fails and its connection is dropped (Postgres hung, or the network). */
const QUERY_TIMEOUT_MS = 15_000;

export interface PostgresDatabaseOptions {
  /** How long a query may go unanswered (QUERY_TIMEOUT_MS by default). */
  queryTimeoutMs?: number;
}

export function createPostgresDatabase(url: string, log: Logger, { queryTimeoutMs = QUERY_TIMEOUT_MS }: PostgresDatabaseOptions = {}): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 3_000,
    // An idle connection keeps its prepared statements this long (pg's default: 10 s).
    idleTimeoutMillis: 60_000,
    keepAlive: true,
  });
  // An idle client losing its connection is reported here; without a listener
  // the pool's 'error' event would end the process.
  pool.on('error', (error) => log.warn({ err: error, code: 'postgres-idle-error' }, 'idle Postgres connection failed'));

  /**
   * Checks a client out with an 'error' listener of its own (a checked-out
   * client whose connection dies between queries emits 'error', which unheard
   * would end the process). After any failure the connection is discarded,
   * which also rolls back whatever transaction it had open.
   */
  async function withClient<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    let broken = false;
    const markBroken = () => {
      broken = true;
    };
    client.on('error', markBroken);
    try {
      return await work(client);
    } catch (error) {
      broken = true;
      throw error;
    } finally {
      client.off('error', markBroken);
      client.release(broken || stalePlans.has(client));
    }
  }

  /**
   * `opening` (statements without parameters) opens the transaction. It goes
   * out with the transaction's first statement, in one round trip, and COMMIT
   * with the last one where the work says which it is (`execThenCommit`):
   * every round trip of a commit holds the document's commit queue.
   */
  function run<T>(opening: string[], work: (sql: Sql) => Promise<T>): Promise<T> {
    return withClient(async (client) => {
      let pending: string[] | null = opening;
      let ended: 'committed' | 'rolled back' | null = null;
      const sql = clientSql(client, {
        takeOpening: () => {
          const taken = pending;
          pending = null;
          return taken;
        },
        onEnded: (outcome) => (ended = outcome),
        queryTimeoutMs,
      });
      const committed = () => ended === 'committed';
      let result: T;
      try {
        result = await work(sql);
      } catch (error) {
        // Committed, then failed: a retry must look the commit up, not write it again.
        throw committed() ? new AmbiguousCommitError(error) : error;
      }
      if (pending !== null || committed()) return result; // nothing was sent, or it is committed already
      // Outside a transaction Postgres would answer COMMIT with a mere warning.
      if (ended) throw new Error('the transaction was rolled back when its COMMIT was refused');
      let answer: pg.QueryResult;
      try {
        answer = await sql.commit();
      } catch (error) {
        throw rolledBackForSure(error) ? error : new AmbiguousCommitError(error);
      }
      // A transaction a refused statement left failed answers COMMIT with ROLLBACK, not an error.
      if (answer.command !== 'COMMIT') throw new Error('a statement of the transaction was refused, so COMMIT rolled it back');
      return result;
    });
  }

  /** Database.single: the tenant's settings go ahead of `work`'s one message, as the opening of a transaction does. */
  function single<T>(tenant: string, work: (sql: Sql) => Promise<T>): Promise<T> {
    return withClient((client) => {
      let opening: string[] | null = [enterTenantStatement(tenant)];
      const takeOpening = () => {
        const taken = opening;
        opening = null;
        return taken;
      };
      return work(oneMessage(clientSql(client, { takeOpening, queryTimeoutMs })));
    });
  }

  return {
    transaction: (tenant, work) => run(['BEGIN', enterTenantStatement(tenant)], work),
    single,
    ownerTransaction: (work) => run(['BEGIN'], work),
    ping: () => withClient(async (client) => void (await send(client, 'SELECT 1', [], queryTimeoutMs))),
    close: () => pool.end(),
  };
}

export interface ClientSqlOptions {
  /** Statements to send (once) ahead of the next statement, in one simple query with that statement's parameters inlined; their results are left out. */
  takeOpening?: () => string[] | null;
  /** Hears that `execThenCommit` ended the transaction, and how. */
  onEnded?: (outcome: 'committed' | 'rolled back') => void;
  /** How long a query may go unanswered (QUERY_TIMEOUT_MS by default). */
  queryTimeoutMs?: number;
}

/** The Sql of a checked-out client, with the transaction's own COMMIT. */
export interface ClientSql extends Sql {
  /** COMMIT, answered as pg answers it (`command` is ROLLBACK when a refused statement had failed the transaction); after a query left unanswered, not sent either. */
  commit(): Promise<pg.QueryResult>;
}

/** A checked-out client as a ClientSql. */
export function clientSql(client: pg.ClientBase, { takeOpening = () => null, onEnded = () => {}, queryTimeoutMs = QUERY_TIMEOUT_MS }: ClientSqlOptions = {}): ClientSql {
  // A query left unanswered still runs on the connection: nothing more is sent behind it (it would wait as long, and
  // a late answer would pass for a refusal); the transaction fails at once, and withClient drops the connection.
  let timedOut: QueryTimeoutError | null = null;
  const roundTrip = async (text: string, params: unknown[] = []) => {
    if (timedOut) throw timedOut;
    try {
      return await send(client, text, params, queryTimeoutMs);
    } catch (error) {
      if (error instanceof QueryTimeoutError) timedOut = error;
      // Through pg's callback an error's stack ends in the socket's read; this gives it the caller's, as pg's promise did.
      else if (error instanceof Error) Error.captureStackTrace(error);
      throw error;
    }
  };
  // Once the transaction ended in execThenCommit (committed, or its COMMIT refused), a statement would run on its own, outside it.
  let ended = false;
  const refuseOnceEnded = () => {
    if (ended) throw new Error('the transaction already ended with its COMMIT; nothing more runs in it');
  };
  /**
   * Runs `opening`'s statements, then the script `pieces` join to, joined in
   * one copy (which pg writes as it is); the rows of each statement after the opening's.
   */
  const script = async (opening: string[], pieces: ScriptPieces) => {
    refuseOnceEnded();
    try {
      const text = [...opening.map((statement) => `${statement};\n`), ...pieces].join('');
      return [(await roundTrip(text)) as never as { rows: Record<string, unknown>[] }].flat().slice(opening.length);
    } catch (error) {
      if (error instanceof pg.DatabaseError && error.code === '0A000' && /cached plan/.test(error.message)) stalePlans.add(client);
      throw error;
    }
  };
  const exec = (text: string) => script(takeOpening() ?? [], [text]);
  return {
    async query(text, params = []) {
      refuseOnceEnded();
      const opening = takeOpening();
      if (opening === null) return roundTrip(text, params) as never;
      // Bytes (a checkpoint's state, hundreds of kB) go as they are rather than as hex in a script: the opening goes
      // first, on its own, which costs a round trip. Keep such statements off the commit path (or not first in it).
      if (params.some((param) => param instanceof Uint8Array)) {
        await script(opening, []);
        return roundTrip(text, params) as never;
      }
      return (await script(opening, [inlineParameters(text, params)]))[0] as never;
    },
    exec,
    commit: () => roundTrip('COMMIT'),
    prepare: (text) => preparedOn(client).prepare(text, exec),
    async execThenCommit(pieces) {
      let results;
      try {
        results = await script(takeOpening() ?? [], [...pieces, ';\nCOMMIT']);
      } catch (error) {
        if (!rolledBackForSure(error)) {
          ended = true;
          throw new AmbiguousCommitError(error);
        }
        // A refused statement leaves the transaction open but failed, where any statement is refused (rolling back to a
        // savepoint goes on); a refused COMMIT ends it, and a statement then runs on its own. Only asking tells which.
        ended = await roundTrip('SELECT 1').then(
          () => true,
          () => false,
        );
        if (ended) onEnded('rolled back');
        throw error;
      }
      ended = true;
      onEnded('committed');
      return results.slice(0, -1);
    },
  };
}

/** A query Postgres did not answer within the timeout; its connection is dropped once it is released (withClient). */
export class QueryTimeoutError extends Error {
  readonly code = 'postgres-timeout';

  constructor(timeoutMs: number) {
    super(`Postgres did not answer a query within ${timeoutMs} ms`);
    this.name = 'QueryTimeoutError';
  }
}

/**
 * `client.query` through its callback, under a timer of our own. With pg's
 * promise form, or its own query_timeout, nearly every query outlived the
 * young generation's next collection, a commit's whole script with it, and
 * was promoted: the old generation filled and each scavenge took longer
 * (bench/README.md, "What pg's promises kept alive").
 */
function send(client: pg.ClientBase, text: string, params: unknown[], timeoutMs: number): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new QueryTimeoutError(timeoutMs)), timeoutMs);
    client.query(text, params, (error: Error | null, result: pg.QueryResult) => {
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(result);
    });
  });
}

const prepared = new WeakMap<pg.ClientBase, PreparedStatements>();
/**
 * Connections whose prepared statements a migration outdated ("cached plan
 * must not change result type" at every run): discarded once their
 * transaction ends, so the next one prepares afresh.
 */
const stalePlans = new WeakSet<pg.ClientBase>();

/** What is prepared on a pooled connection lasts as long as the connection. */
function preparedOn(client: pg.ClientBase): PreparedStatements {
  let statements = prepared.get(client);
  if (!statements) prepared.set(client, (statements = new PreparedStatements()));
  return statements;
}

/**
 * An ERROR answer to COMMIT means it rolled back. A lost connection, a FATAL
 * (an administrator's shutdown, say: SQLSTATE class 57) or a connection
 * exception (class 08) may arrive after the commit was already durable.
 */
function rolledBackForSure(error: unknown): boolean {
  return error instanceof pg.DatabaseError && error.severity !== 'FATAL' && !/^(08|57)/.test(error.code ?? '');
}
