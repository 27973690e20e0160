import { EventEmitter } from 'node:events';
import type { CommitPipeline } from '../commit/pipeline.ts';
import type { CommitEntry, UpdateChanges } from '../commit/writer.ts';
import { claimClients, claimKey, type ClientClaim, type ClientOwner } from '../db/client-owners.ts';
import { AmbiguousCommitError, type Sql } from '../db/database.ts';
import { lockDocuments } from '../db/documents.ts';
import { appendAsPredicted, appendUpdates, findLoggedUpdate, type NewUpdate } from '../db/updates.ts';
import type { DocumentName } from '../documents/name.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { PostgresStorage } from '../storage/postgres.ts';
import { retryUntilDone } from './retry.ts';

/** An update to log, with what it changed (for what the commit pipeline writes in the same transaction). */
export interface LogEntry extends NewUpdate {
  changes?: UpdateChanges;
}

interface Queued extends LogEntry {
  resolve(seq: number): void;
  reject(error: Error): void;
}

export interface Committed {
  document: DocumentName;
  seq: number;
}

export interface UpdateLogEvents {
  /** After each commit: the last seq of every document in it. */
  committed: [Committed[]];
}

/** Claims of clientIDs made while Postgres did not answer (see ClientOwners): the commit of their update writes them. */
export interface UnconfirmedClaims {
  /** The clients of `update`'s content whose claims its commit must write, for its author. */
  unconfirmed(name: string, update: Uint8Array): Array<{ client: number; owner: ClientOwner }>;
  /** Once committed: who owns each of them, as Postgres decided. */
  confirmed(name: string, owners: Map<number, ClientOwner>): void;
}

/** A commit's claims: what Postgres holds for them, and the updates whose content is under another user's clientID. */
interface WrittenClaims {
  owners: Map<string, Map<number, ClientOwner>>;
  foreign: Set<Queued>;
}

type WantedClaim = ClientClaim & { entry: Queued };

function noClaims(): WrittenClaims {
  return { owners: new Map(), foreign: new Set() };
}

/** A group committed: each update's seq, what to do now, and its claims. */
interface GroupCommitted {
  seqs: number[];
  afterCommit(): void;
  claims: WrittenClaims;
}

export interface UpdateLogOptions {
  /** Where the group commit runs: one transaction per tenant and batch. */
  storage: Pick<PostgresStorage, 'commit'>;
  log: Logger;
  metrics: Metrics;
  /** Most updates in one group commit. */
  batchMax: number;
  /** Most update bytes in one group commit (a larger single update goes alone). */
  batchMaxBytes: number;
  /** What each commit writes besides the log, in the same transaction. */
  pipeline: CommitPipeline;
  claims?: UnconfirmedClaims;
}

/**
 * The durable update log with group commit. `append` queues an update and
 * resolves with its seq once it is committed; one writer drains the queue,
 * writing everything that queued up meanwhile in one transaction per tenant,
 * in one round trip where the seqs it predicts hold (`commitAsPredicted`).
 * A failed write is retried (with backoff) until it lands: entries stay in
 * order, nothing is dropped, and nothing is acknowledged meanwhile.
 */
export class UpdateLog extends EventEmitter<UpdateLogEvents> {
  private readonly options: UpdateLogOptions;
  private readonly queue: Queued[] = [];
  /** Per document: how many updates wait, and the commit of the newest. */
  private readonly pending = new Map<string, { count: number; newest: Promise<unknown> }>();
  private readonly lastKnownSeq = new Map<string, number>();
  /**
   * Documents another writer (instance) logged in between this instance's
   * commits, as its latest commit of them found: they go the longer way,
   * unpredicted, until a commit finds that no one did (see `noteContention`).
   */
  private readonly contended = new Set<string>();
  private drainWaiters: Array<{ name?: string; resolve(): void }> = [];
  private readonly closing = new AbortController();
  private writing = false;
  private failing = false;
  private queuedBytes = 0;

  constructor(options: UpdateLogOptions) {
    super();
    this.options = options;
  }

  /** False while writes to Postgres are failing. */
  get healthy(): boolean {
    return !this.failing;
  }

  /** Bytes of updates waiting to be committed. */
  get backlogBytes(): number {
    return this.queuedBytes;
  }

  append(update: LogEntry): Promise<number> {
    if (this.closing.signal.aborted) return Promise.reject(new Error('the update log is closed'));
    // No closure over `update`: the callbacks below live until the commit, and would keep it.
    const { promise: committed, resolve, reject } = Promise.withResolvers<number>();
    this.queue.push({ ...update, resolve, reject });
    const name = update.document.name;
    this.queuedBytes += update.update.byteLength;
    // Later writes wait on `newest` to mean "committed so far": an update logged but refused its
    // acknowledgement (foreign-client) is committed all the same.
    const landed = committed.catch((error: unknown) => {
      if (!(error instanceof ConcordError && error.code === 'foreign-client')) throw error;
    });
    landed.catch(() => {}); // a failed commit is reported to whoever awaits it
    this.pending.set(name, { count: (this.pending.get(name)?.count ?? 0) + 1, newest: landed });
    if (!this.writing) {
      this.writing = true;
      // setImmediate lets every message already read from the sockets join this batch.
      setImmediate(() => void this.drain());
    }
    return committed;
  }

  hasPending(name: string): boolean {
    return this.pending.has(name);
  }

  /** Names of the documents with updates waiting to be committed. */
  pendingDocuments(): string[] {
    return [...this.pending.keys()];
  }

  /** Settles once every update of `name` queued so far is committed. */
  committedSoFar(name: string): Promise<unknown> {
    return this.pending.get(name)?.newest ?? Promise.resolve();
  }

  /** Resolves once nothing of `name` (or of any document) waits to be committed. */
  whenDrained(name?: string): Promise<void> {
    if (this.isDrained(name)) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push({ name, resolve }));
  }

  /** The last seq this instance knows for a document (from loading or committing; 0: loaded, never written). */
  noteVersion(name: string, seq: number): void {
    if (seq > (this.lastKnownSeq.get(name) ?? -1)) this.lastKnownSeq.set(name, seq);
  }

  forget(name: string): void {
    if (this.hasPending(name)) return;
    this.lastKnownSeq.delete(name);
    this.contended.delete(name);
  }

  /** Stops retrying; whatever is not committed yet is rejected (and so never acknowledged). */
  close(): void {
    this.closing.abort(new Error('the update log closed before this update was committed'));
  }

  private isDrained(name?: string): boolean {
    return name ? !this.hasPending(name) : this.pending.size === 0;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.closing.signal.aborted) {
      const batch = this.nextBatch();
      this.options.metrics.commitBatchSize.observe(batch.length);
      for (const group of groupByTenant(batch)) await this.commitGroup(group);
    }
    this.abandon(this.queue.splice(0));
    this.writing = false;
  }

  private nextBatch(): Queued[] {
    let bytes = 0;
    let size = 0;
    while (size < this.queue.length && size < this.options.batchMax) {
      bytes += this.queue[size]!.update.byteLength;
      if (size > 0 && bytes > this.options.batchMaxBytes) break;
      size += 1;
    }
    return this.queue.splice(0, size);
  }

  private async commitGroup(group: Queued[]): Promise<void> {
    const tenant = group[0]!.document.tenant;
    // Once a COMMIT's outcome is lost, every retry must first find out whether
    // it landed: appending again could log the same updates twice.
    let uncertain = false;
    let outcome: GroupCommitted;
    try {
      outcome = await retryUntilDone(
        async () => {
          try {
            return await this.options.storage.commit(tenant, async (sql) => {
              const claims = this.wantedClaims(group);
              if (uncertain) {
                const landed = await this.findCommitted(sql, group);
                // Its claims landed with it: writing them again only reads them. What the
                // pipeline's writers would have remembered of it is lost: they start afresh.
                if (landed) return { seqs: landed, afterCommit: () => this.options.pipeline.forget(documentNames(group)), claims: await this.writeClaims(sql, claims) };
              }
              // A group with claims (made while Postgres did not answer) goes the longer way: they are written after
              // the append, which locks the documents' rows first, in the same order on every instance.
              if (claims.length === 0) {
                const predicted = await this.commitAsPredicted(sql, group);
                if (predicted) return predicted;
              }
              const seqs = await appendUpdates(sql, group);
              this.noteContention(group, seqs);
              const written = await this.writeClaims(sql, claims);
              return { seqs, afterCommit: await this.options.pipeline.write(sql, this.commitEntries(group, seqs), { lastInTransaction: true }), claims: written };
            });
          } catch (error) {
            uncertain ||= error instanceof AmbiguousCommitError;
            throw error;
          }
        },
        {
          firstDelayMs: 100,
          maxDelayMs: 2_000,
          signal: this.closing.signal,
          onFailure: (error, retryInMs) => {
            this.failing = true;
            this.options.metrics.persistenceErrors.inc({ operation: 'append-updates' });
            this.options.log.error({ err: error, code: 'update-log-write-failed', updates: group.length, retryInMs }, 'writing updates failed; retrying');
          },
        },
      );
    } catch {
      // Only closing ends the retries.
      this.abandon(group);
      return;
    }
    if (this.failing) this.options.log.info({ code: 'update-log-recovered' }, 'update log writes succeed again');
    this.failing = false;
    outcome.afterCommit();
    for (const [name, owners] of outcome.claims.owners) this.options.claims?.confirmed(name, owners);
    this.settle(group, outcome.seqs, outcome.claims.foreign);
  }

  /**
   * The group in one round trip: its seqs predicted from the versions this
   * instance knows, the pipeline's writes built on them and sent with the
   * append, which Postgres refuses unless the prediction holds. Null when a
   * document's version is not known here or it is contended, or when another
   * writer (instance) logged a document first: the transaction is then back
   * to before the append, to go the longer way (append, then the writes on the
   * seqs it gave), whose seqs tell which documents are contended.
   */
  private async commitAsPredicted(sql: Sql, group: Queued[]): Promise<GroupCommitted | null> {
    const lastSeqs = new Map<string, number>();
    const seqs: number[] = [];
    for (const entry of group) {
      const name = entry.document.name;
      const last = lastSeqs.get(name) ?? this.lastKnownSeq.get(name);
      if (last === undefined || this.contended.has(name)) return null;
      lastSeqs.set(name, last + 1);
      seqs.push(last + 1);
    }
    const afterCommit = await this.options.pipeline.writeAtOnce(sql, appendAsPredicted(group, lastSeqs), this.commitEntries(group, seqs), { lastInTransaction: true });
    this.options.metrics.seqPredictions.inc({ outcome: afterCommit ? 'held' : 'missed' });
    return afterCommit && { seqs, afterCommit, claims: noClaims() };
  }

  /**
   * What the seqs a commit got say of its documents: one whose first seq
   * follows the version this instance knew was logged by no one else in
   * between, so its next commits are predicted again; another was, and is
   * contended. While another instance writes a document too, most predictions
   * would miss, and a miss costs more round trips than it saves.
   */
  private noteContention(group: Queued[], seqs: number[]): void {
    for (const name of documentNames(group)) {
      const known = this.lastKnownSeq.get(name);
      if (known === undefined) continue;
      if (seqs[group.findIndex((entry) => entry.document.name === name)] === known + 1) this.contended.delete(name);
      else this.contended.add(name);
    }
  }

  private commitEntries(group: Queued[], seqs: number[]): CommitEntry[] {
    return group.map((entry, index) => ({
      update: entry,
      seq: seqs[index]!,
      changes: entry.changes,
      newerQueued: () => this.queuedAfter(entry.document.name, group),
    }));
  }

  /** Claims of clientIDs the group's updates write under that were made while Postgres did not answer. */
  private wantedClaims(group: Queued[]): WantedClaim[] {
    const claims = this.options.claims;
    if (!claims) return [];
    return group.flatMap((entry) =>
      // Claimed for whom the instance gave it to: an update may carry another user's parked content it filled in.
      claims.unconfirmed(entry.document.name, entry.update).map(({ client, owner }): WantedClaim => ({ name: entry.document.name, client, ...owner, entry })),
    );
  }

  /**
   * Writes the wanted claims. Should another instance have claimed one of
   * them first, the update is logged regardless (this instance applied and
   * relayed it) but never acknowledged.
   */
  private async writeClaims(sql: Sql, wanted: WantedClaim[]): Promise<WrittenClaims> {
    const written = noClaims();
    if (wanted.length === 0) return written;
    const owners = await claimClients(sql, wanted);
    for (const claim of wanted) {
      const owner = owners.get(claimKey(claim.name, claim.client));
      if (!owner) continue;
      const ofDocument = written.owners.get(claim.name) ?? new Map<number, ClientOwner>();
      written.owners.set(claim.name, ofDocument.set(claim.client, owner));
      if (owner.userId !== claim.userId || owner.origin !== claim.origin) written.foreign.add(claim.entry);
    }
    return written;
  }

  /** True while updates of `name` newer than those in `group` (being committed) wait to be committed. */
  private queuedAfter(name: string, group: Queued[]): boolean {
    const inGroup = group.filter((entry) => entry.document.name === name).length;
    return (this.pending.get(name)?.count ?? 0) > inGroup;
  }

  /**
   * After a commit whose outcome was lost: the seqs the group got if it did
   * land (all of it did, or none), else null. The documents' rows are locked
   * first, so a commit still in flight is waited for, never raced. A batch's
   * updates of one document got consecutive seqs, so finding each document's
   * first update is enough.
   */
  private async findCommitted(sql: Sql, group: Queued[]): Promise<number[] | null> {
    const names = documentNames(group);
    await lockDocuments(sql, names);
    const firstSeq = new Map<string, number>();
    for (const name of names) {
      const first = group.find((entry) => entry.document.name === name)!;
      const seq = await findLoggedUpdate(sql, name, this.lastKnownSeq.get(name) ?? 0, first.update);
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
  }

  private settle(group: Queued[], seqs: number[], foreign: Set<Queued>): void {
    const last = new Map<string, Committed>();
    group.forEach((entry, index) => {
      const seq = seqs[index]!;
      last.set(entry.document.name, { document: entry.document, seq });
      this.noteVersion(entry.document.name, seq);
      if (!foreign.has(entry)) return entry.resolve(seq);
      this.options.metrics.refusals.inc({ code: 'foreign-client' });
      this.options.log.warn(
        { code: 'foreign-client', document: entry.document.name, seq, userId: entry.userId },
        'an update was written under a clientID another instance gave another user while Postgres did not answer here; it is logged but never acknowledged',
      );
      entry.reject(new ConcordError('foreign-client', 'the update was written under a clientID another user writes under'));
    });
    this.options.metrics.updatesPersisted.inc(group.length);
    this.release(group);
    this.emit('committed', [...last.values()]);
  }

  private abandon(entries: Queued[]): void {
    for (const entry of entries) entry.reject(this.closing.signal.reason as Error);
    this.release(entries);
  }

  private release(entries: Queued[]): void {
    for (const entry of entries) {
      this.queuedBytes -= entry.update.byteLength;
      const name = entry.document.name;
      const pending = this.pending.get(name);
      if (pending && pending.count > 1) pending.count -= 1;
      else this.pending.delete(name);
    }
    const waiting = this.drainWaiters;
    this.drainWaiters = [];
    for (const waiter of waiting) {
      if (this.isDrained(waiter.name)) waiter.resolve();
      else this.drainWaiters.push(waiter);
    }
  }
}

function documentNames(entries: Queued[]): string[] {
  return [...new Set(entries.map((entry) => entry.document.name))];
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
