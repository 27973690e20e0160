import * as Y from 'yjs';
import type { CommitPipeline } from '../commit/pipeline.ts';
import { updateChanges, type CommitEntry, type UpdateChanges } from '../commit/writer.ts';
import { structClients } from '../auth/client-owners.ts';
import { readClientOwners, type ClientOwner } from '../db/client-owners.ts';
import { appendUpdates, type LoggedUpdate, type NewUpdate } from '../db/updates.ts';
import { kindOf } from '../documents/kinds.ts';
import type { DocumentName } from '../documents/name.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { DocumentTracker } from '../projection/tracker.ts';
import { DocumentReader } from '../projection/view.ts';
import type { PostgresDocuments } from '../storage/postgres-documents.ts';
import type { Storage } from '../storage/storage.ts';
import type { Checkpointer } from './checkpoints.ts';
import { applyStored, replay } from './replay.ts';
import type { UpdateLog } from './update-log.ts';

/**
 * Loading and storing for the Persistence extension (on
 * @hocuspocus/extension-database, whose fetch calls `load`). The log is the source of truth: a load is the
 * latest checkpoint plus the updates after it, and a "store" only waits until
 * every update of the document is committed, so Hocuspocus unloads a
 * document only once nothing of it is at risk.
 */
export class DocumentStore {
  private readonly storage: Storage;
  private readonly stored: PostgresDocuments;
  private readonly updateLog: UpdateLog;
  private readonly checkpointer: Checkpointer;
  private readonly pipeline: CommitPipeline;
  private readonly log: Logger;

  constructor(storage: Storage, stored: PostgresDocuments, updateLog: UpdateLog, checkpointer: Checkpointer, pipeline: CommitPipeline, log: Logger) {
    this.storage = storage;
    this.stored = stored;
    this.log = log;
    this.pipeline = pipeline;
    this.updateLog = updateLog;
    this.checkpointer = checkpointer;
  }

  /**
   * Loads the document into `into` (Hocuspocus's, still empty): its latest
   * checkpoint, then the updates after it, applied one by one (merging them
   * first, or replaying into another Y.Doc and encoding that, would cost whole
   * extra passes over a long history's tombstones). Returns the seq it holds.
   * `beforeApplying` gets the stored updates, in order, before they are applied.
   */
  async load(document: DocumentName, into: Y.Doc, beforeApplying?: (stored: Uint8Array[]) => Promise<void>): Promise<number> {
    let loaded;
    try {
      loaded = await this.stored.loadForServing(document);
    } catch (error) {
      throw new ConcordError('storage-unavailable', `${document.name} could not be loaded from Postgres; try again shortly`, { cause: error });
    }
    const { version, checkpoint, tail, tablesBehind } = loaded;
    this.updateLog.noteVersion(document.name, version);
    this.checkpointer.advance(document, version, checkpoint?.seq ?? 0);
    if (beforeApplying) await beforeApplying([...(checkpoint ? [checkpoint.state] : []), ...tail.map(({ update }) => update)]);
    applyStored(into, checkpoint, tail);
    if (version > 0 && tablesBehind) await this.rebuildTables(document, into, version);
    return version;
  }

  /**
   * The tables lag the log (they were added after the document was written,
   * or a projection failed): make them equal the document before it goes live
   * here. Under the document's row lock, and only if no one (another instance)
   * has logged an update since the replay: they wrote newer rows.
   */
  private async rebuildTables(document: DocumentName, doc: Y.Doc, version: number): Promise<void> {
    try {
      const rows = new DocumentReader(kindOf(document.kind), doc, document.id).rows();
      await this.stored.rebuildTables(document, rows, version);
    } catch (error) {
      // Stale tables are better than a document no one can open; the next load tries again.
      this.log.error({ err: error, code: 'tables-rebuild-failed', document: document.name }, 'the tables could not be rebuilt; the document loads regardless');
    }
  }

  /** The committed document at its latest version, as a fresh Y.Doc (the caller destroys it); null if it was never opened. */
  async read(document: DocumentName): Promise<{ version: number; doc: Y.Doc } | null> {
    const found = await this.storage.load(document);
    return found && { version: found.version, doc: replay(found.checkpoint, found.tail) };
  }

  /** The document's last committed seq (0 when it was never written). */
  async version(document: DocumentName): Promise<number> {
    return (await this.storage.bounds(document))?.latest ?? 0;
  }

  /** The document's logged updates after `afterSeq`, in order. */
  async updatesAfter(document: DocumentName, afterSeq: number): Promise<LoggedUpdate[]> {
    return this.storage.readUpdates(document, afterSeq);
  }

  /**
   * Logs relayed content that no instance logged (the instance that received
   * it stopped first), the part the log does not hold, in order, with its
   * audit and table rows read from the log's own document. Each run of
   * updates is logged for the best author known: the owner of the clientIDs
   * its content carries when one user owns them all (attribution
   * `client-owner`), else nobody (user id '', attribution `unknown`). Under
   * the document's row lock, so of two instances doing this at once the
   * second finds it logged. Returns the seqs logged.
   */
  async logUnlogged(document: DocumentName, relayed: RelayedUpdate[]): Promise<number[]> {
    const outcome = await this.stored.underLock(document, async (sql, { checkpoint, tail }) => {
      const logged = replay(checkpoint, tail);
      try {
        const owners = await readClientOwners(sql, document.name, [...new Set(relayed.flatMap(({ update }) => structClients(update)))]);
        const parts = partsNotLogged(document, logged, attributed(document, relayed, owners));
        if (parts.length === 0) return null;
        const seqs = await appendUpdates(sql, parts.map((part) => part.update));
        return { seqs, afterCommit: await this.pipeline.write(sql, parts.map((part, index) => ({ ...part, seq: seqs[index]! }))) };
      } finally {
        logged.destroy();
      }
    });
    if (!outcome) return [];
    outcome.afterCommit();
    const last = outcome.seqs.at(-1)!;
    this.updateLog.noteVersion(document.name, last);
    this.checkpointer.advance(document, last);
    return outcome.seqs;
  }

  async allCommitted(document: DocumentName): Promise<void> {
    await this.updateLog.whenDrained(document.name);
  }

  unloaded(document: DocumentName): void {
    this.updateLog.forget(document.name);
    this.checkpointer.forget(document.name);
  }
}

/** Relayed content as it arrived: what it brought, and when. */
export interface RelayedUpdate {
  update: Uint8Array;
  receivedAt: Date;
}

/** Runs of relayed updates with one author each, in order (see DocumentStore.logUnlogged). */
function attributed(document: DocumentName, relayed: RelayedUpdate[], owners: Map<number, ClientOwner>): NewUpdate[] {
  const runs: Array<NewUpdate & { updates: Uint8Array[] }> = [];
  for (const { update, receivedAt } of relayed) {
    const found = new Map(structClients(update).map((client) => [client, owners.get(client)]));
    const [first] = found.values();
    const oneOwner = first !== undefined && [...found.values()].every((owner) => owner?.userId === first.userId && owner.origin === first.origin);
    const author = oneOwner ? { ...first, attribution: 'client-owner' as const } : { userId: '', origin: 'client' as const, attribution: 'unknown' as const };
    const last = runs.at(-1);
    if (last && last.userId === author.userId && last.origin === author.origin && last.attribution === author.attribution) last.updates.push(update);
    else runs.push({ document, update, receivedAt, ...author, updates: [update] });
  }
  return runs.map(({ updates, ...run }) => ({ ...run, update: updates.length === 1 ? updates[0]! : Y.mergeUpdates(updates) }));
}

/** The parts of `updates` that `logged` lacks, each with what it changes there (applied to `logged` in turn). */
function partsNotLogged(document: DocumentName, logged: Y.Doc, updates: NewUpdate[]): Array<Omit<CommitEntry, 'seq'>> {
  let tracker: DocumentTracker | null = null;
  try {
    tracker = new DocumentTracker(kindOf(document.kind), logged, document.id);
  } catch {
    // Logged without audit rows; the commit pipeline marks the tables to be rebuilt.
  }
  let changes: UpdateChanges | undefined;
  logged.on('afterTransaction', (transaction: Y.Transaction) => {
    try {
      // The rows are read when the recovery commits: as `logged` holds them after every part.
      const reader = tracker;
      changes = reader ? updateChanges(reader.observe(transaction), reader) : undefined;
    } catch {
      changes = undefined;
    }
  });
  const parts: Array<Omit<CommitEntry, 'seq'>> = [];
  for (const update of updates) {
    const part = Y.diffUpdate(update.update, Y.encodeStateVector(logged));
    if (Y.snapshotContainsUpdate(Y.snapshot(logged), part)) continue;
    changes = undefined;
    Y.applyUpdate(logged, part);
    // Recovered alone, in one commit: nothing of the document is queued behind it.
    parts.push({ update: { ...update, update: part }, changes, newerQueued: () => false });
  }
  return parts;
}
