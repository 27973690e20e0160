import pg from 'pg';
import { AmbiguousCommitError, enterTenantStatement, type Database, type Sql } from './database.ts';
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

  /** `begin` opens the transaction (and may set it up in the same round trip: a simple query of several statements). */
  function run<T>(begin: (client: pg.PoolClient) => string, work: (sql: Sql) => Promise<T>): Promise<T> {
    return withClient(async (client) => {
      const sql = clientSql(client);
      await client.query(begin(client));
      const result = await work(sql);
      try {
        await client.query('COMMIT');
      } catch (error) {
        throw rolledBackForSure(error) ? error : new AmbiguousCommitError(error);
      }
      return result;
    });
  }

  return {
    transaction: (tenant, work) => run((client) => `BEGIN; ${enterTenantStatement(client.escapeLiteral(tenant))}`, work),
    ownerTransaction: (work) => run(() => 'BEGIN', work),
    ping: () => withClient(async (client) => void (await client.query('SELECT 1'))),
    close: () => pool.end(),
  };
}

/** A checked-out client as the Sql interface (a script's single result comes as a list too). */
export function clientSql(client: pg.ClientBase): Sql {
  return {
    query: (text, params) => client.query(text, params) as never,
    exec: async (script) => [(await client.query(script)) as never].flat(),
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
