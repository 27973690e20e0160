import type { AuditTrail } from '../audit/trail.ts';
import type { Sql } from '../db/database.ts';
import type { NewUpdate } from '../db/updates.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { writeTableChanges } from './tables.ts';
import type { DocumentChanges } from './tracker.ts';

/** A logged update with what it changed. */
export interface Recorded {
  update: NewUpdate;
  seq: number;
  changes: DocumentChanges;
}

/**
 * Writes what committed updates mean, inside the transaction that logs them:
 * the audit rows and the tables. An acknowledgement therefore implies all three.
 */
export class Recorder {
  private readonly audit: AuditTrail;
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(audit: AuditTrail, log: Logger, metrics: Metrics) {
    this.audit = audit;
    this.log = log;
    this.metrics = metrics;
  }

  /** Returns what to remember once the transaction commits. */
  async record(sql: Sql, updates: Recorded[]): Promise<() => void> {
    if (updates.length === 0) return () => {};
    // Values are validated and cleaned before they get here; should one still
    // be refused, the log rows must land anyway (the tables are rebuilt from
    // the log when the document next loads).
    await sql.query('SAVEPOINT projection');
    try {
      const remember = await this.audit.write(sql, updates);
      await writeTableChanges(sql, updates);
      return remember;
    } catch (error) {
      if (!isDataError(error)) throw error;
      await sql.query('ROLLBACK TO SAVEPOINT projection');
      this.metrics.persistenceErrors.inc({ operation: 'project' });
      const names = [...new Set(updates.map(({ update }) => update.document.name))];
      this.log.error({ err: error, code: 'projection-failed', documents: names }, 'audit rows and tables could not be written; the updates are logged');
      return () => names.forEach((name) => this.audit.forget(name));
    }
  }

  /** A commit landed whose outcome was learned too late to remember its text bursts. */
  lost(names: string[]): void {
    for (const name of names) this.audit.forget(name);
  }

  unloaded(name: string): void {
    this.audit.forget(name);
  }
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation). */
function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}
