import { createHash } from 'node:crypto';

/**
 * The one small interface every backend implements. Application code only ever
 * runs inside `transaction(tenant, ...)`: as the runtime role, with the tenant
 * set for that transaction, so row-level security walls tenants apart.
 */
export interface Sql {
  query<Row = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: Row[] }>;
  /** Runs a script of several statements without parameters in one round trip; each statement's rows, in order. */
  exec(script: string): Promise<Array<{ rows: Record<string, unknown>[] }>>;
  /**
   * Runs the script `script`'s pieces join to (see ScriptPieces), then
   * COMMIT, in one round trip: a commit saves a round trip to the
   * database server (the pg backend only; an embedded database commits when
   * the transaction's work returns). Nothing runs after it. When a
   * statement of the script is refused, COMMIT never ran: the caller may roll
   * back to a savepoint and go on. When COMMIT itself is refused, the
   * transaction is over, rolled back: everything after fails. A failure that
   * may have committed (the connection lost) is an AmbiguousCommitError.
   */
  execThenCommit?(script: ScriptPieces): Promise<Array<{ rows: Record<string, unknown>[] }>>;
  /**
   * Prepares `text` on this session unless it already is; the name to
   * EXECUTE it by, or null when Postgres refused to prepare it (it then runs
   * inlined: a bug in the statement is then refused where the commit
   * pipeline's fallbacks handle it). Postgres plans a prepared statement once
   * per session, not at every run: a commit's statements took about as long
   * to plan as to run. Without it, statements run with their parameters inlined.
   */
  prepare?(text: string): Promise<string | null>;
}

/**
 * The statements prepared on one database session, by text (`Sql.prepare` of
 * a backend that runs scripts). Texts come from the named SQL functions of
 * src/db, a bounded set. A name is the hash of its text, so a session that is
 * not the one a statement was prepared on (a pooler in transaction mode)
 * fails with "does not exist" instead of running another statement.
 */
export class PreparedStatements {
  private readonly names = new Map<string, string>();

  async prepare(text: string, exec: (script: string) => Promise<unknown>): Promise<string | null> {
    let name = this.names.get(text);
    if (name !== undefined) return name;
    name = `concord_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    // A refused PREPARE must not fail the transaction: the statement is refused again where it runs, after the
    // savepoint the commit pipeline's fallbacks roll back to. (A PREPARE that ran outlives even a rollback.)
    // The line break ends a comment the text may close with.
    try {
      await exec(`SAVEPOINT concord_prepare; PREPARE ${name} AS ${text}\n; RELEASE SAVEPOINT concord_prepare`);
    } catch (error) {
      // A transaction a refused statement left failed refuses the savepoint too: that is the error to report.
      await exec('ROLLBACK TO SAVEPOINT concord_prepare; RELEASE SAVEPOINT concord_prepare').catch(() => {
        throw error;
      });
      return null;
    }
    this.names.set(text, name);
    return name;
  }
}

export interface Database {
  /** Runs `work` in one transaction as `concord_app` with `app.tenant_id` = tenant. */
  transaction<T>(tenant: string, work: (sql: Sql) => Promise<T>): Promise<T>;
  /**
   * As `transaction`, in one round trip to the database server where
   * `transaction` takes two: `work` sends one query or script, which goes
   * with the tenant's settings as one message, and Postgres runs a message's
   * statements as one transaction of their own (committed when the last
   * succeeds, rolled back when one fails), without BEGIN or COMMIT. A second
   * message throws. The outcome of a write is unknown when the connection is
   * lost during its round trip, so a write through it must be safe to repeat.
   */
  single<T>(tenant: string, work: (sql: Sql) => Promise<T>): Promise<T>;
  /** Runs `work` in one transaction as the connecting (owner) role: migrations only. */
  ownerTransaction<T>(work: (sql: Sql) => Promise<T>): Promise<T>;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * `sql` as Database.single hands it out: one query or script, and no bytes
 * as parameters (the pg backend would send them apart from the tenant's
 * settings, outside their transaction).
 */
export function oneMessage(sql: Sql): Sql {
  let sent = false;
  const first = () => {
    if (sent) throw new Error('Database.single sends one message, and this is a second: use transaction');
    sent = true;
  };
  return {
    query(text, params = []) {
      first();
      if (params.some((param) => param instanceof Uint8Array)) throw new Error('Database.single cannot send bytes as parameters: use transaction');
      return sql.query(text, params);
    },
    exec(script) {
      first();
      return sql.exec(script);
    },
  };
}

/** Transactions as the owner role, for maintenance across tenants (pruning events, finding the tenants events wait to be pushed for). */
export interface OwnerDatabase {
  transaction<T>(work: (sql: Sql) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * Thrown when the connection failed while COMMIT was in flight (alone, or at
 * the end of a script): the transaction may or may not have landed, and the
 * caller must find out.
 */
export class AmbiguousCommitError extends Error {
  constructor(cause: unknown) {
    super('the connection failed during the round trip that carried COMMIT; the outcome is unknown', { cause });
    this.name = 'AmbiguousCommitError';
  }
}

/** Owns nothing, so row-level security always applies to it (created by schema/001). */
const RUNTIME_ROLE = 'concord_app';

const ENTER_TENANT = `SELECT set_config('role', '${RUNTIME_ROLE}', true), set_config('app.tenant_id', $1, true)`;

/** Switches the current transaction to the runtime role and the tenant, in one round trip. */
export async function enterTenant(sql: Sql, tenant: string): Promise<void> {
  await sql.query(ENTER_TENANT, [tenant]);
}

/** The same as a statement without parameters, to send ahead of others in one round trip. */
export function enterTenantStatement(tenant: string): string {
  return inlineParameters(ENTER_TENANT, [tenant]);
}

/** A statement with its parameters, built by a named SQL function to run alone or beside others (`runTogether`). */
export interface Statement {
  text: string;
  params: unknown[];
}

/**
 * Runs statements in one round trip (a commit's audit rows and tables, say:
 * every round trip holds the document's commit queue): several go as one
 * script with their parameters inlined. Each statement's rows, in order. A
 * failure fails the rest; the caller rolls back. `lastInTransaction`: COMMIT
 * goes with them where the backend can (`Sql.execThenCommit`).
 */
export async function runTogether(sql: Sql, statements: Statement[], { lastInTransaction = false } = {}): Promise<Array<{ rows: Record<string, unknown>[] }>> {
  if (statements.length === 0) return [];
  if (statements.length === 1 && !sql.prepare && !(lastInTransaction && sql.execThenCommit)) return [await sql.query(statements[0]!.text, statements[0]!.params)];
  const script: string[] = [];
  for (const statement of statements) {
    if (script.length > 0) script.push(';\n');
    await addToScript(script, sql, statement);
  }
  return lastInTransaction && sql.execThenCommit ? sql.execThenCommit(script) : sql.exec(script.join(''));
}

/**
 * A script as the pieces it is joined from, in order. A commit's script holds
 * its rows' text (a quote's notes in four statements, say): joined once, where
 * it is sent, it is copied once rather than at every step that builds it.
 */
export type ScriptPieces = readonly string[];

/** Adds a statement to a script: EXECUTE of it prepared where the backend keeps statements prepared, else inlined. */
async function addToScript(script: string[], sql: Sql, { text, params }: Statement): Promise<void> {
  // Only statements with parameters may be prepared (not SAVEPOINT, say), and only they are run again with other values.
  const name = sql.prepare && params.length > 0 ? await sql.prepare(text) : null;
  if (name === null) return void script.push(inlineParameters(text, params));
  script.push(`EXECUTE ${name}(`);
  params.forEach((param, index) => {
    if (index > 0) script.push(', ');
    script.push(literal(param, index + 1));
  });
  script.push(')');
}

/**
 * `text` with `$n` replaced by parameter n as a quoted literal of the text a
 * driver would send for it: untyped, so Postgres types it from its context
 * exactly as it types a parameter.
 */
export function inlineParameters(text: string, params: readonly unknown[]): string {
  return text.replace(/\$(\d+)/g, (_, index: string) => literal(params[Number(index) - 1], Number(index)));
}

/** Parameter `index` as an E'' literal (which reads the same whatever standard_conforming_strings says), or NULL. */
function literal(param: unknown, index: number): string {
  const value = parameterText(param);
  if (value === null) return 'NULL';
  // Postgres text cannot hold NUL, and in a script it ends the statement (08P01): input reaching SQL is validated at the edge.
  if (value.includes('\0')) throw new Error(`parameter $${index} contains NUL, which no Postgres text can hold: refuse it where it enters`);
  // Backslashes and quotes are both doubled: one pass over what may be a whole commit's rows.
  return `E'${value.replace(/[\\']/g, '$&$&')}'`;
}

/** A parameter in Postgres's text input format (arrays as array literals, bytes as hex). */
function parameterText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  if (Array.isArray(value)) return `{${value.map((item) => (Array.isArray(item) ? parameterText(item) : arrayElement(parameterText(item)))).join(',')}}`;
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function arrayElement(text: string | null): string {
  return text === null ? 'NULL' : `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}
