import { AmbiguousCommitError, runTogether, type Sql, type Statement } from '../db/database.ts';
import { markTablesStale } from '../db/documents.ts';
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
    const untracked = documentNames(entries.filter((entry) => !entry.changes));
    if (untracked.length > 0) await markTablesStale(sql, untracked);
    const tracked = entries.filter((entry): entry is TrackedEntry => entry.changes !== undefined);
    if (tracked.length === 0) return () => {};
    try {
      return await this.writeAll(sql, tracked, { lastInTransaction });
    } catch (error) {
      if (error instanceof AmbiguousCommitError) throw error;
      const afterCommit: Array<() => void> = [];
      for (const name of documentNames(tracked)) afterCommit.push(await this.writeOne(sql, name, tracked.filter((entry) => entry.update.document.name === name)));
      return () => afterCommit.forEach((done) => done());
    }
  }

  /** Ends what the writers remember of these documents. */
  forget(names: string[]): void {
    for (const writer of this.configuration.writers) writer.forget(names);
  }

  private async writeOne(sql: Sql, name: string, entries: TrackedEntry[]): Promise<() => void> {
    try {
      return await this.writeAll(sql, entries);
    } catch (error) {
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
      this.configuration.log.error(
        { err: error, code: 'events-failed', document: name, writers: essential.map((writer) => writer.name) },
        'not even the essential rows (change events) could be written; the updates are logged without them',
      );
      return () => {};
    }
  }

  /**
   * Every writer's statements in one round trip after a savepoint (with the
   * COMMIT when `lastInTransaction`); on failure rolls back to it, which
   * throws in turn when the connection is gone or COMMIT itself was refused
   * (the transaction is over), and so does every fallback after it: the
   * commit fails and is retried.
   */
  private async writeAll(sql: Sql, entries: TrackedEntry[], { writers = this.configuration.writers, lastInTransaction = false } = {}): Promise<() => void> {
    const writes: PreparedWrite[] = writers.map((writer) => writer.prepare(entries));
    // A name of its own: should this fail before its script is sent (preparing a statement), the rollback must not
    // reach back to the savepoint of another document's writes, which this transaction keeps.
    const name = `commit_writers_${++this.savepoints}`;
    const savepoint: Statement = { text: `SAVEPOINT ${name}`, params: [] };
    try {
      const results = await runTogether(sql, [savepoint, ...writes.flatMap((write) => write.statements)], { lastInTransaction });
      return () => {
        let next = 1;
        for (const write of writes) {
          write.committed(results.slice(next, next + write.statements.length));
          next += write.statements.length;
        }
      };
    } catch (error) {
      if (error instanceof AmbiguousCommitError) throw error;
      await sql.query(`ROLLBACK TO SAVEPOINT ${name}`);
      throw error;
    }
  }
}

function documentNames(entries: CommitEntry[]): string[] {
  return [...new Set(entries.map(({ update }) => update.document.name))];
}
