import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from '../db/database.ts';
import { documentVersion, lockDocuments } from '../db/documents.ts';
import type { Json } from '../documents/layout.ts';
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
  /** The header row as this instance reads it now. */
  header: () => Record<string, Json>;
  members: Map<string, Record<string, Json> | null>;
}

/**
 * Keeps the tables right when several instances write one document. Each
 * instance projects the updates it logs from its own copy of the document,
 * which may not hold another instance's concurrent edit yet; so each instance
 * also writes the rows that relayed updates touched, after its own commits.
 * Every instance's last write is then of the document all of them converged
 * to, whichever lands last. Audit rows are never written here: they belong to
 * the instance that logged the update.
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

  /** A relayed transaction touched these rows. */
  touched(document: DocumentName, rows: RowChanges, header: () => Record<string, Json>): void {
    let pending = this.pending.get(document.name);
    if (!pending) {
      pending = { document, header, members: new Map() };
      this.pending.set(document.name, pending);
      this.scheduleFlush(document.name);
    }
    for (const [id, row] of rows.members) pending.members.set(id, row);
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
    // After this instance's own commits of the document, so its writes land in the order its copy changed.
    await this.updateLog.committedSoFar(name).catch(() => {});
    const pending = this.pending.get(name);
    if (!pending) return;
    this.pending.delete(name);
    const { document } = pending;
    const rows: RowChanges = { header: pending.header(), members: pending.members };
    try {
      await retryUntilDone(
        () =>
          this.db.transaction(document.tenant, async (sql) => {
            await lockDocuments(sql, [name]);
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
    } catch {
      // Closing: the instance that logged the updates wrote its rows.
    }
  }
}
