import { setTimeout as sleep } from 'node:timers/promises';
import type { DocumentName } from '../documents/name.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { retryUntilDone } from '../persistence/retry.ts';
import type { UpdateLog } from '../persistence/update-log.ts';
import type { PostgresDocuments } from '../storage/postgres-documents.ts';
import type { RowChanges } from './view.ts';

// Relayed changes arrive in bursts; one write per burst.
const FLUSH_DELAY_MS = 100;
// After this long without relayed changes the stored rows are compared with the document.
const CHECK_AFTER_MS = 1_000;

/** This instance's live copy of a document, as the tables are written from it. */
export interface DocumentCopy {
  /** The header row and the current rows of the members with these ids (null: no such member now); of every member without ids. */
  rows(memberIds?: ReadonlySet<string>): RowChanges;
  /** Applies what the log holds and the copy lacks; resolves with the seq the copy then holds all of (null: the copy is gone). */
  upToLog(): Promise<number | null>;
  /** True while the copy holds content not logged yet (updates waiting to be committed here, relayed ones not logged by their instance). */
  holdsUnlogged(): boolean;
}

interface Pending {
  document: DocumentName;
  /** Ids of the members relayed updates touched. */
  memberIds: Set<string>;
  copy: DocumentCopy;
}

/**
 * Keeps the tables right when several instances write one document. Each
 * instance writes the rows of the updates it logs; content that reaches this
 * instance from another one (relayed through Redis, or read from the log)
 * changes rows here too (another instance's concurrent lines move this one's),
 * so this instance writes those rows as well. Like a commit's, the rows are
 * read when written, under the document's row lock (see TableWriter in tables.ts): the
 * last write of a row reads the document every copy converged to. Audit rows
 * are never written here: they belong to the instance that logged the update.
 *
 * Once relayed changes stop, the stored rows are compared with the document
 * (when this copy equals the log): a row out of step is logged and rewritten,
 * never left silently.
 */
export class RelayedRows {
  private readonly pending = new Map<string, Pending>();
  /** Per document, the last flush scheduled: flushes of one document run one after another. */
  private readonly flushes = new Map<string, Promise<void>>();
  private readonly checks = new Map<string, NodeJS.Timeout>();
  private readonly closing = new AbortController();
  private readonly stored: PostgresDocuments;
  private readonly updateLog: UpdateLog;
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(stored: PostgresDocuments, updateLog: UpdateLog, log: Logger, metrics: Metrics) {
    this.stored = stored;
    this.updateLog = updateLog;
    this.log = log;
    this.metrics = metrics;
  }

  /** Content from another instance touched the header and these members of `copy`. */
  touched(document: DocumentName, memberIds: Iterable<string>, copy: DocumentCopy): void {
    this.cancelCheck(document.name);
    let pending = this.pending.get(document.name);
    if (!pending) {
      pending = { document, memberIds: new Set(), copy };
      this.pending.set(document.name, pending);
      this.scheduleFlush(document.name);
    }
    for (const id of memberIds) pending.memberIds.add(id);
  }

  /** The document was unloaded here: nothing more to check. */
  forget(name: string): void {
    this.cancelCheck(name);
  }

  close(): void {
    this.closing.abort(new Error('closing'));
    for (const name of [...this.checks.keys()]) this.cancelCheck(name);
  }

  private scheduleFlush(name: string): void {
    const flushed = (this.flushes.get(name) ?? Promise.resolve())
      .then(() => sleep(FLUSH_DELAY_MS))
      .then(() => this.flush(name));
    this.flushes.set(name, flushed);
    void flushed.finally(() => {
      if (this.flushes.get(name) === flushed) this.flushes.delete(name);
    });
  }

  private async flush(name: string): Promise<void> {
    const pending = this.pending.get(name);
    if (!pending) return;
    this.pending.delete(name);
    const { document, copy } = pending;
    for (let written: boolean | undefined = false; written === false; ) {
      // The copy holds this instance's queued updates too, and the tables never show what the log lacks (see TableWriter).
      await this.updateLog.committedSoFar(name).catch(() => {});
      written = await this.retrying(name, 'relayed-rows-failed', 'writing rows of relayed changes', () =>
        // Not while updates of this instance wait to be committed: their commit writes the rows.
        this.stored.writeRelayedRows(document, () => (this.updateLog.hasPending(name) ? null : copy.rows(pending.memberIds))),
      );
    }
    if (!this.pending.has(name)) this.scheduleCheck(document, copy);
  }

  private scheduleCheck(document: DocumentName, copy: DocumentCopy): void {
    if (this.closing.signal.aborted) return;
    this.cancelCheck(document.name);
    this.checks.set(
      document.name,
      setTimeout(() => {
        this.checks.delete(document.name);
        void this.check(document, copy);
      }, CHECK_AFTER_MS),
    );
  }

  private cancelCheck(name: string): void {
    clearTimeout(this.checks.get(name));
    this.checks.delete(name);
  }

  /**
   * Compares the stored rows with the document once this copy equals the log:
   * it holds everything logged (brought up to the log, and no one logged more
   * since, under the lock) and nothing unlogged. Until then it checks later;
   * a document no longer followed here is not checked.
   */
  private async check(document: DocumentName, copy: DocumentCopy): Promise<void> {
    const name = document.name;
    const busy = () => copy.holdsUnlogged() || this.pending.has(name) || this.checks.has(name);
    const repaired = await this.retrying(name, 'tables-check-failed', 'comparing the tables with the document', async () => {
      if (busy()) return 'later';
      const seq = await copy.upToLog();
      if (seq === null) return 'gone';
      return (await this.stored.repairTables(document, (version) => (version !== seq || busy() ? null : copy.rows()))) ?? 'later';
    });
    if (repaired === undefined || repaired === 'gone') return;
    if (repaired === 'later') {
      // Unless a flush to come schedules one anyway.
      if (!this.pending.has(name) && !this.checks.has(name)) this.scheduleCheck(document, copy);
      return;
    }
    if (!repaired.header && repaired.members.length === 0) return;
    this.metrics.persistenceErrors.inc({ operation: 'tables-out-of-step' });
    this.log.warn(
      { code: 'tables-out-of-step', document: name, version: repaired.version, header: repaired.header, rows: repaired.members.length, ids: repaired.members.slice(0, 10) },
      'stored rows differed from the document; they were rewritten',
    );
  }

  /** Runs `work` until it succeeds (logging each failure); undefined when closing ended it or it failed for good. */
  private async retrying<T>(name: string, code: string, what: string, work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await retryUntilDone(work, {
        firstDelayMs: 200,
        maxDelayMs: 5_000,
        signal: this.closing.signal,
        onFailure: (error, retryInMs) => {
          this.metrics.persistenceErrors.inc({ operation: 'project-relayed' });
          this.log.warn({ err: error, code, document: name, retryInMs }, `${what} failed; retrying`);
        },
      });
    } catch (error) {
      // Closing (the instance that logged the updates wrote its rows), or the document could not be read.
      if (!this.closing.signal.aborted) this.log.error({ err: error, code, document: name }, `${what} gave up`);
      return undefined;
    }
  }
}
