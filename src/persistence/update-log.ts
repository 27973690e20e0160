import { setTimeout as sleep } from 'node:timers/promises';
import { AmbiguousCommitError, type Database } from '../db/database.ts';
import { appendUpdates, findLoggedUpdate, type NewUpdate } from '../db/updates.ts';
import type { DocumentName } from '../documents/name.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';

interface Queued extends NewUpdate {
  resolve(seq: number): void;
  reject(error: Error): void;
}

export interface Committed {
  document: DocumentName;
  seq: number;
}

export interface UpdateLogOptions {
  db: Database;
  log: Logger;
  metrics: Metrics;
  batchMax: number;
  /** Called after each commit with the last seq of every document in it. */
  onCommitted(committed: Committed[]): void;
}

const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2_000;

/**
 * The durable update log with group commit. `append` queues an update and
 * resolves with its seq once it is committed; one writer drains the queue,
 * writing everything that queued up meanwhile in one transaction per tenant.
 * A failed write is retried (with backoff) until it lands: entries stay in
 * order, nothing is dropped, and nothing is acknowledged meanwhile.
 */
export class UpdateLog {
  private readonly queue: Queued[] = [];
  private readonly pendingByDocument = new Map<string, number>();
  private readonly lastKnownSeq = new Map<string, number>();
  private drainWaiters: Array<{ name?: string; resolve(): void }> = [];
  private writing = false;
  private closed = false;
  healthy = true;

  private readonly options: UpdateLogOptions;

  constructor(options: UpdateLogOptions) {
    this.options = options;
  }

  append(update: NewUpdate): Promise<number> {
    if (this.closed) return Promise.reject(new Error('the update log is closed'));
    const name = update.document.name;
    this.pendingByDocument.set(name, (this.pendingByDocument.get(name) ?? 0) + 1);
    const committed = new Promise<number>((resolve, reject) => this.queue.push({ ...update, resolve, reject }));
    if (!this.writing) {
      this.writing = true;
      // setImmediate lets every message already read from the sockets join this batch.
      setImmediate(() => void this.drain());
    }
    return committed;
  }

  hasPending(name: string): boolean {
    return this.pendingByDocument.has(name);
  }

  /** Resolves once nothing of `name` (or of any document) waits to be committed. */
  whenDrained(name?: string): Promise<void> {
    const idle = name ? !this.hasPending(name) : this.pendingByDocument.size === 0;
    if (idle) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push({ name, resolve }));
  }

  /** The last seq this instance knows for a document (from loading or committing). */
  noteVersion(name: string, seq: number): void {
    if (seq > (this.lastKnownSeq.get(name) ?? 0)) this.lastKnownSeq.set(name, seq);
  }

  forget(name: string): void {
    if (!this.hasPending(name)) this.lastKnownSeq.delete(name);
  }

  /** Stops retrying; whatever is still queued is rejected (and so never acknowledged). */
  close(): void {
    this.closed = true;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      const batch = this.queue.splice(0, this.options.batchMax);
      this.options.metrics.commitBatchSize.observe(batch.length);
      for (const group of groupByTenant(batch)) await this.commitUntilDone(group);
    }
    const abandoned = this.queue.splice(0);
    for (const entry of abandoned) entry.reject(new Error('the update log closed before this update was committed'));
    this.release(abandoned);
    this.writing = false;
  }

  private async commitUntilDone(group: Queued[]): Promise<void> {
    const tenant = group[0]!.document.tenant;
    for (let delay = RETRY_FIRST_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      try {
        const seqs = await this.commit(tenant, group);
        if (!this.healthy) this.options.log.info({ code: 'update-log-recovered' }, 'update log writes succeed again');
        this.healthy = true;
        this.settle(group, seqs);
        return;
      } catch (error) {
        this.healthy = false;
        this.options.metrics.persistenceErrors.inc({ operation: 'append-updates' });
        this.options.log.error({ err: error, code: 'update-log-write-failed', updates: group.length, retryInMs: delay }, 'writing updates failed; retrying');
        if (this.closed) {
          for (const entry of group) entry.reject(error as Error);
          this.release(group);
          return;
        }
        await sleep(delay);
      }
    }
  }

  private async commit(tenant: string, group: Queued[]): Promise<number[]> {
    try {
      return await this.options.db.transaction(tenant, (sql) => appendUpdates(sql, group));
    } catch (error) {
      if (!(error instanceof AmbiguousCommitError)) throw error;
      const seqs = await this.findCommitted(tenant, group);
      if (seqs) return seqs;
      throw error;
    }
  }

  /**
   * After a commit whose outcome was lost: the seqs the group got if it did
   * land (all of it did, or none), else null. A batch's updates of one document
   * got consecutive seqs, so finding each document's first update is enough.
   */
  private async findCommitted(tenant: string, group: Queued[]): Promise<number[] | null> {
    return this.options.db.transaction(tenant, async (sql) => {
      const firstSeq = new Map<string, number>();
      for (const entry of group) {
        const name = entry.document.name;
        if (firstSeq.has(name)) continue;
        const seq = await findLoggedUpdate(sql, name, this.lastKnownSeq.get(name) ?? 0, entry.update);
        if (seq === null) return null;
        firstSeq.set(name, seq);
      }
      const offset = new Map<string, number>();
      return group.map((entry) => {
        const name = entry.document.name;
        const index = offset.get(name) ?? 0;
        offset.set(name, index + 1);
        return firstSeq.get(name)! + index;
      });
    });
  }

  private settle(group: Queued[], seqs: number[]): void {
    const last = new Map<string, Committed>();
    group.forEach((entry, index) => {
      const seq = seqs[index]!;
      last.set(entry.document.name, { document: entry.document, seq });
      this.noteVersion(entry.document.name, seq);
      entry.resolve(seq);
    });
    this.options.metrics.updatesPersisted.inc(group.length);
    this.release(group);
    this.options.onCommitted([...last.values()]);
  }

  private release(group: Queued[]): void {
    for (const entry of group) {
      const name = entry.document.name;
      const left = (this.pendingByDocument.get(name) ?? 1) - 1;
      if (left > 0) this.pendingByDocument.set(name, left);
      else this.pendingByDocument.delete(name);
    }
    const waiting = this.drainWaiters;
    this.drainWaiters = [];
    for (const waiter of waiting) {
      const idle = waiter.name ? !this.hasPending(waiter.name) : this.pendingByDocument.size === 0;
      if (idle) waiter.resolve();
      else this.drainWaiters.push(waiter);
    }
  }
}

function groupByTenant(batch: Queued[]): Queued[][] {
  const groups = new Map<string, Queued[]>();
  for (const entry of batch) {
    const group = groups.get(entry.document.tenant) ?? [];
    group.push(entry);
    groups.set(entry.document.tenant, group);
  }
  return [...groups.values()];
}
