import pg from 'pg';
import { AmbiguousCommitError, enterTenantStatement, inlineParameters, type Database, type Sql } from './database.ts';
import type { Logger } from '../log.ts';

// int8 (bigint) columns hold seq and version: well within 2^53, read them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export function createPostgresDatabase(url: string, log: Logger): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 3_000,
    query_timeout: 15_000,
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
      client.release(broken);
    }
  }

  /**
   * `begin` opens the transaction (one or more statements without parameters).
   * It goes out with the transaction's first statement, in one round trip:
   * every round trip of a commit holds the document's commit queue.
   */
  function run<T>(begin: (client: pg.PoolClient) => Opening, work: (sql: Sql) => Promise<T>): Promise<T> {
    return withClient(async (client) => {
      let opening: Opening | null = begin(client);
      const sql = clientSql(client, () => {
        const taken = opening;
        opening = null;
        return taken;
      });
      const result = await work(sql);
      if (opening !== null) return result; // nothing was sent: nothing to commit
      try {
        await client.query('COMMIT');
      } catch (error) {
        throw rolledBackForSure(error) ? error : new AmbiguousCommitError(error);
      }
      return result;
    });
  }

  return {
    transaction: (tenant, work) => run((client) => ({ script: `BEGIN; ${enterTenantStatement(client.escapeLiteral(tenant))}`, statements: 2 }), work),
    ownerTransaction: (work) => run(() => ({ script: 'BEGIN', statements: 1 }), work),
    ping: () => withClient(async (client) => void (await client.query('SELECT 1'))),
    close: () => pool.end(),
  };
}

/** Statements to send ahead of a transaction's first one, and how many there are. */
interface Opening {
  script: string;
  statements: number;
}

/**
 * A checked-out client as the Sql interface. `takeOpening`, when it gives an
 * opening (once), sends it ahead of the next statement in one simple query,
 * that statement's parameters inlined; the opening's results are left out.
 */
export function clientSql(client: pg.ClientBase, takeOpening: () => Opening | null = () => null): Sql {
  const script = async (text: string, skip = 0) => [(await client.query(text)) as never as { rows: Record<string, unknown>[] }].flat().slice(skip);
  return {
    async query(text, params = []) {
      const opening = takeOpening();
      if (opening === null) return client.query(text, params) as never;
      return (await script(`${opening.script};\n${inlineParameters(text, params)}`, opening.statements))[0] as never;
    },
    exec(text) {
      const opening = takeOpening();
      return opening === null ? script(text) : script(`${opening.script};\n${text}`, opening.statements);
    },
  };
}

/**
 * An ERROR answer to COMMIT means it rolled back. A lost connection, a FATAL
 * (an administrator's shutdown, say: SQLSTATE class 57) or a connection
 * exception (class 08) may arrive after the commit was already durable.
 */
function rolledBackForSure(error: unknown): boolean {
  return error instanceof pg.DatabaseError && error.severity !== 'FATAL' && !/^(08|57)/.test(error.code ?? '');
}
