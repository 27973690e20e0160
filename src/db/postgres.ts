import pg from 'pg';
import { AmbiguousCommitError, enterTenant, type Database, type Sql } from './database.ts';
import type { Logger } from 'pino';

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

  async function run<T>(enter: (sql: Sql) => Promise<void>, work: (sql: Sql) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    const sql: Sql = { query: (text, params) => client.query(text, params) as never, exec: (script) => client.query(script) };
    let broken = false;
    try {
      await client.query('BEGIN');
      await enter(sql);
      const result = await work(sql);
      try {
        await client.query('COMMIT');
      } catch (error) {
        broken = true;
        throw new AmbiguousCommitError(error);
      }
      return result;
    } catch (error) {
      if (!broken) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
      }
      throw error;
    } finally {
      client.release(broken);
    }
  }

  return {
    transaction: (tenant, work) => run((sql) => enterTenant(sql, tenant), work),
    ownerTransaction: (work) => run(async () => {}, work),
    async ping() {
      await pool.query('SELECT 1');
    },
    close: () => pool.end(),
  };
}
