import type { AuditTrail } from '../audit/trail.ts';
import { runTogether, type Sql, type Statement } from '../db/database.ts';
import { markTablesStale } from '../db/documents.ts';
import type { NewUpdate } from '../db/updates.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { tableChanges, type Stamp } from './tables.ts';
import type { DocumentChanges, RowChanges } from './tracker.ts';

/**
 * What an update changed (its audit rows and which rows it touched), and a
 * reader of its document's rows as they are when the commit writes them.
 */
export interface RecordedChanges extends DocumentChanges {
  rowsNow(memberIds: ReadonlySet<string>): RowChanges;
}

/** A logged update with what it changed (none when reading the transaction failed). */
export interface Recorded {
  update: NewUpdate;
  seq: number;
  changes?: RecordedChanges;
  /** True while newer updates of its document wait to be committed here. */
  newerQueued: () => boolean;
}

/**
 * Writes what committed updates mean, inside the transaction that logs them:
 * the audit rows and the tables. An acknowledgement therefore implies all three.
 * Should Postgres still refuse some of it (a bug, or a value no check foresaw),
 * the updates are logged regardless: that document's projection is rolled back
 * to a savepoint, the document is marked, and its tables are rebuilt from the
 * log when it next loads. Other documents of the same commit are unaffected.
 */
export class Recorder {
  private readonly audit: AuditTrail;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  /** Per document, rows a commit wrote as they were when its updates were applied (see tableChanges). */
  private readonly owed = new Map<string, ReadonlyMap<string, Stamp>>();

  constructor(audit: AuditTrail, log: Logger, metrics: Metrics) {
    this.audit = audit;
    this.log = log;
    this.metrics = metrics;
  }

  /** Returns what to remember once the transaction commits. */
  async record(sql: Sql, updates: Recorded[]): Promise<() => void> {
    const untracked = documentNames(updates.filter((recorded) => !recorded.changes));
    if (untracked.length > 0) await markTablesStale(sql, untracked);
    const tracked = updates.filter((recorded): recorded is Required<Recorded> => recorded.changes !== undefined);
    if (tracked.length === 0) return () => {};
    try {
      return await this.write(sql, tracked);
    } catch {
      const remembers: Array<() => void> = [];
      for (const name of documentNames(tracked)) remembers.push(await this.recordOne(sql, name, tracked.filter((recorded) => recorded.update.document.name === name)));
      return () => remembers.forEach((remember) => remember());
    }
  }

  /** Ends the documents' open text bursts and owed rows: unloaded, or their commit's outcome was learned too late to remember them. */
  forget(names: string[]): void {
    for (const name of names) {
      this.audit.forget(name);
      this.owed.delete(name);
    }
  }

  private async recordOne(sql: Sql, name: string, updates: Array<Required<Recorded>>): Promise<() => void> {
    try {
      return await this.write(sql, updates);
    } catch (error) {
      await markTablesStale(sql, [name]);
      this.metrics.persistenceErrors.inc({ operation: 'project' });
      this.log.error({ err: error, code: 'projection-failed', document: name }, 'audit rows and tables could not be written; the updates are logged and the tables will be rebuilt');
      return () => this.forget([name]);
    }
  }

  /**
   * Audit rows and table rows in one round trip after a savepoint; on failure
   * rolls back to it (which throws in turn if the connection is gone, failing
   * the commit). Returns what to remember once the commit lands.
   */
  private async write(sql: Sql, updates: Array<Required<Recorded>>): Promise<() => void> {
    const audit = this.audit.write(updates);
    const tables = tableChanges(updates, this.owed);
    const savepoint: Statement = { text: 'SAVEPOINT projection', params: [] };
    try {
      const results = await runTogether(sql, [savepoint, ...audit.statements, ...tables.statements]);
      const remember = audit.written(results.slice(1));
      return () => {
        remember();
        for (const [name, members] of tables.owed) {
          if (members) this.owed.set(name, members);
          else this.owed.delete(name);
        }
      };
    } catch (error) {
      await sql.query('ROLLBACK TO SAVEPOINT projection');
      throw error;
    }
  }
}

function documentNames(updates: Recorded[]): string[] {
  return [...new Set(updates.map(({ update }) => update.document.name))];
}
