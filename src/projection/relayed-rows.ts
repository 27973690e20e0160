import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from '../db/database.ts';
import { documentVersion, lockDocuments } from '../db/documents.ts';
import type { DocumentName } from '../documents/name.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { retryUntilDone } from '../persistence/retry.ts';
import type { UpdateLog } from '../persistence/update-log.ts';
import { writeRelayedRows } from './tables.ts';
import type { RowChanges } from './tracker.ts';

// Relayed changes arrive in bursts; one write per burst.
const FLUSH_DELAY_MS = 100;

interface Pending {
  document: DocumentName;
  /** Ids of the members relayed updates touched. */
  memberIds: Set<string>;
  /** The header row and the rows of these members as this instance reads them now. */
  rows: (memberIds: ReadonlySet<string>) => RowChanges;
}

/**
 * Keeps the tables right when several instances write one document. Each
 * instance writes the rows of the updates it logs; content that reaches this
 * instance from another one (relayed through Redis, or read from the log)
 * changes rows here too (another instance's concurrent lines move this one's),
 * so this instance writes those rows as well. Like a commit's, the rows are
 * read when written, under the document's row lock (see `tableChanges`): the
 * last write of a row reads the document every copy converged to. Audit rows
 * are never written here: they belong to the instance that logged the update.
 */
export class RelayedRows {
  private readonly pending = new Map<string, Pending>();
  /** Per document, the last flush scheduled: flushes of one document run one after another. */
  private readonly flushes = new Map<string, Promise<void>>();
  private readonly closing = new AbortController();
  private readonly db: Database;
  private readonly updateLog: UpdateLog;
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(db: Database, updateLog: UpdateLog, log: Logger, metrics: Metrics) {
    this.db = db;
    this.updateLog = updateLog;
    this.log = log;
    this.metrics = metrics;
  }

  /** A relayed transaction touched the header and these members; `rows` reads them when they are written. */
  touched(document: DocumentName, memberIds: Iterable<string>, rows: (memberIds: ReadonlySet<string>) => RowChanges): void {
    let pending = this.pending.get(document.name);
    if (!pending) {
      pending = { document, memberIds: new Set(), rows };
      this.pending.set(document.name, pending);
      this.scheduleFlush(document.name);
    }
    for (const id of memberIds) pending.memberIds.add(id);
  }

  close(): void {
    this.closing.abort(new Error('closing'));
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
    // Rows are read when written, so waiting is not needed for correctness; it saves writing what a commit on its way writes anyway.
    await this.updateLog.committedSoFar(name).catch(() => {});
    const pending = this.pending.get(name);
    if (!pending) return;
    this.pending.delete(name);
    const { document } = pending;
    try {
      await retryUntilDone(
        () =>
          this.db.transaction(document.tenant, async (sql) => {
            await lockDocuments(sql, [name]);
            // Read now, under the lock: never older than a row another write already landed.
            const rows = pending.rows(pending.memberIds);
            await writeRelayedRows(sql, document, rows, (await documentVersion(sql, name)) ?? 0);
          }),
        {
          firstDelayMs: 200,
          maxDelayMs: 5_000,
          signal: this.closing.signal,
          onFailure: (error, retryInMs) => {
            this.metrics.persistenceErrors.inc({ operation: 'project-relayed' });
            this.log.warn({ err: error, code: 'relayed-rows-failed', document: name, retryInMs }, 'writing rows of relayed changes failed; retrying');
          },
        },
      );
    } catch (error) {
      // Closing (the instance that logged the updates wrote its rows), or the document could not be read.
      if (!this.closing.signal.aborted) this.log.error({ err: error, code: 'relayed-rows-failed', document: name }, 'rows of relayed changes were not written');
    }
  }
}
