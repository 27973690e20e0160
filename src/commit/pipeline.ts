import { AmbiguousCommitError, runTogether, type Sql, type Statement } from '../db/database.ts';
import { markTablesStale, markTablesStaleStatement } from '../db/documents.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { CommitEntry, CommitWriter, PreparedWrite, TrackedEntry } from './writer.ts';

export interface CommitPipelineConfiguration {
  /** What a commit writes besides the log, in this order. */
  writers: CommitWriter[];
  log: Logger;
  metrics: Metrics;
}

/**
 * Everything a commit writes besides the log, inside the transaction that
 * logs its updates: each writer's statements, in one round trip. An
 * acknowledgement therefore implies all of them. Should Postgres still refuse
 * some of it (a bug, or a value no check foresaw), the updates are logged
 * regardless: that document's writes are rolled back to a savepoint, the
 * document is marked, and its tables are rebuilt from the log when it next
 * loads. Other documents of the same commit are unaffected. So is a document
 * whose changes could not be read: it is logged and marked the same way.
 */
export class CommitPipeline {
  private readonly configuration: CommitPipelineConfiguration;
  private savepoints = 0;

  constructor(configuration: CommitPipelineConfiguration) {
    this.configuration = configuration;
  }

  /**
   * Writes what `entries` mean in the transaction of `sql`; returns what to do
   * once it commits. `lastInTransaction`: nothing follows in the transaction,
   * so its COMMIT may go in the same round trip; a failure may then have
   * committed (see `Sql.execThenCommit`).
   */
  async write(sql: Sql, entries: CommitEntry[], { lastInTransaction = false } = {}): Promise<() => void> {
    return (await this.writeAtOnce(sql, [], entries, { lastInTransaction })) ?? (await this.writeEach(sql, entries));
  }

  /**
   * `leading` (statements the writes need done first: the append of the
   * entries' updates) and what `entries` mean, in one round trip. All or
   * nothing: should Postgres refuse any of it, the transaction is rolled back
   * to before `leading` and null returned, for the caller to go the longer
   * way. Otherwise as `write`.
   */
  async writeAtOnce(sql: Sql, leading: Statement[], entries: CommitEntry[], { lastInTransaction = false } = {}): Promise<(() => void) | null> {
    const { tracked, untracked } = byTracking(entries);
    try {
      return await this.writeAll(sql, tracked, {
        leading: untracked.length > 0 ? [...leading, markTablesStaleStatement(untracked)] : leading,
        writers: tracked.length > 0 ? this.configuration.writers : [],
        lastInTransaction,
      });
    } catch (error) {
      if (transactionOver(error)) throw error;
      return null;
    }
  }

  /** Ends what the writers remember of these documents. */
  forget(names: string[]): void {
    for (const writer of this.configuration.writers) writer.forget(names);
  }

  /** Each document's writes on their own, once they were refused together: one document's failure is not another's. */
  private async writeEach(sql: Sql, entries: CommitEntry[]): Promise<() => void> {
    const { tracked, untracked } = byTracking(entries);
    if (untracked.length > 0) await markTablesStale(sql, untracked);
    const afterCommit: Array<() => void> = [];
    for (const name of documentNames(tracked)) afterCommit.push(await this.writeOne(sql, name, tracked.filter((entry) => entry.update.document.name === name)));
    return () => afterCommit.forEach((done) => done());
  }

  private async writeOne(sql: Sql, name: string, entries: TrackedEntry[]): Promise<() => void> {
    try {
      return await this.writeAll(sql, entries);
    } catch (error) {
      if (transactionOver(error)) throw error;
      await markTablesStale(sql, [name]);
      this.configuration.metrics.persistenceErrors.inc({ operation: 'project' });
      this.configuration.log.error(
        { err: error, code: 'projection-failed', document: name },
        'audit rows and tables could not be written; the updates are logged and the tables will be rebuilt',
      );
      const essentials = await this.writeEssentials(sql, name, entries);
      return () => {
        this.forget([name]);
        essentials();
      };
    }
  }

  /** The essential writers' rows alone (the change events), once the others' failed for a document. */
  private async writeEssentials(sql: Sql, name: string, entries: TrackedEntry[]): Promise<() => void> {
    const essential = this.configuration.writers.filter((writer) => writer.essential);
    if (essential.length === 0) return () => {};
    try {
      return await this.writeAll(sql, entries, { writers: essential });
    } catch (error) {
      if (transactionOver(error)) throw error;
      this.configuration.log.error(
        { err: error, code: 'events-failed', document: name, writers: essential.map((writer) => writer.name) },
        'not even the essential rows (change events) could be written; the updates are logged without them',
      );
      return () => {};
    }
  }

  /**
   * A savepoint, `leading`, then every writer's statements, in one round trip
   * (with the COMMIT when `lastInTransaction`); on failure rolls back to the
   * savepoint and throws. Should even that be refused, the transaction can do
   * nothing more (its COMMIT was refused, or the connection is gone): a
   * TransactionOverError, which no fallback tries to write after.
   */
  private async writeAll(
    sql: Sql,
    entries: TrackedEntry[],
    { leading = [] as Statement[], writers = this.configuration.writers, lastInTransaction = false } = {},
  ): Promise<() => void> {
    const writes: PreparedWrite[] = writers.map((writer) => writer.prepare(entries));
    // A name of its own: should this fail before its script is sent (preparing a statement), the rollback must not
    // reach back to the savepoint of another document's writes, which this transaction keeps.
    const name = `commit_writers_${++this.savepoints}`;
    const before: Statement[] = [{ text: `SAVEPOINT ${name}`, params: [] }, ...leading];
    try {
      const results = await runTogether(sql, [...before, ...writes.flatMap((write) => write.statements)], { lastInTransaction });
      return () => {
        let next = before.length;
        for (const write of writes) {
          write.committed(results.slice(next, next + write.statements.length));
          next += write.statements.length;
        }
      };
    } catch (error) {
      if (error instanceof AmbiguousCommitError) throw error;
      await sql.query(`ROLLBACK TO SAVEPOINT ${name}`).catch(() => {
        throw new TransactionOverError(error);
      });
      throw error;
    }
  }
}

/** A commit's writes were refused and so was the rollback to their savepoint: the commit fails as a whole, to be retried. */
class TransactionOverError extends Error {
  constructor(cause: unknown) {
    super(`the transaction cannot go on after its writes were refused: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'TransactionOverError';
  }
}

/** Nothing more can be written in the transaction: the commit fails (or its outcome is unknown). */
function transactionOver(error: unknown): boolean {
  return error instanceof AmbiguousCommitError || error instanceof TransactionOverError;
}

/** The entries whose changes are known, and the documents of those whose changes are not (to be marked). */
function byTracking(entries: CommitEntry[]): { tracked: TrackedEntry[]; untracked: string[] } {
  return {
    tracked: entries.filter((entry): entry is TrackedEntry => entry.changes !== undefined),
    untracked: documentNames(entries.filter((entry) => !entry.changes)),
  };
}

function documentNames(entries: CommitEntry[]): string[] {
  return [...new Set(entries.map(({ update }) => update.document.name))];
}
