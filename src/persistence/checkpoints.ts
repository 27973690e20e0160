import { Worker } from 'node:worker_threads';
import type { Checkpoint } from '../db/checkpoints.ts';
import type { LoggedUpdate } from '../db/updates.ts';
import type { DocumentName } from '../documents/name.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { Storage } from '../storage/storage.ts';
import type { BuildBase, BuilderData, BuildRequest, BuildResponse, DropRequest } from './checkpoint-worker.ts';
import { retryUntilDone } from './retry.ts';

/** Checkpoints built in one pass over the log when a long stretch has none: bounds the tail read per pass and the checkpoints built but not yet written. */
const CHECKPOINTS_PER_PASS = 20;

interface Progress {
  document: DocumentName;
  checkpointSeq: number;
  latestSeq: number;
  /** The write under way, if any. */
  writing: Promise<void> | null;
  /** The document was unloaded while a write was under way. */
  forgotten: boolean;
}

export interface CheckpointerConfiguration {
  storage: Storage;
  /** CHECKPOINT_EVERY: updates between checkpoints, the most a load or a version read replays. */
  every: number;
  /**
   * CHECKPOINT_KEEP_BYTES: the worker keeps the documents it built last, up
   * to this many bytes of encoded state (in memory a long-edited quote takes
   * about 18 times its encoded state), and builds their next checkpoint from
   * the updates since; 0 keeps none.
   */
  keepBytes: number;
  log: Logger;
  metrics: Metrics;
}

/**
 * Writes checkpoints in the background so that loading a document never
 * replays more than about `every` updates. A checkpoint is built from the log
 * itself (the previous checkpoint, or the document the worker kept from its
 * last build, and the updates after it up to a seq), never from the live
 * document, so it is exactly the state after that seq whoever wrote it.
 */
export class Checkpointer {
  private readonly progress = new Map<string, Progress>();
  /** Per document, the last of the `checkpointNear` calls, which run one after the other. */
  private readonly nearWrites = new Map<string, Promise<void>>();
  private readonly closing = new AbortController();

  private readonly configuration: CheckpointerConfiguration;
  private readonly builder: CheckpointBuilder;

  constructor(configuration: CheckpointerConfiguration) {
    this.configuration = configuration;
    this.builder = new CheckpointBuilder(configuration.keepBytes);
  }

  /** Records where a document stands; writes a checkpoint if its tail is long. */
  advance(document: DocumentName, latestSeq: number, checkpointSeq?: number): void {
    const current = this.progress.get(document.name);
    const progress = current ?? { document, checkpointSeq: checkpointSeq ?? 0, latestSeq, writing: null, forgotten: false };
    progress.latestSeq = Math.max(progress.latestSeq, latestSeq);
    if (checkpointSeq !== undefined) {
      // Loaded (again).
      progress.checkpointSeq = Math.max(progress.checkpointSeq, checkpointSeq);
      progress.forgotten = false;
    }
    this.progress.set(document.name, progress);
    if (!progress.writing && !this.closing.signal.aborted && progress.latestSeq - progress.checkpointSeq >= this.configuration.every) {
      progress.writing = this.writeUntilDone(progress);
    }
  }

  /**
   * Makes sure version `seq` is at most `every` updates past a checkpoint: if
   * the newest one at or before it is further back (a document written while
   * this process was down, or imported, may have none), writes one at every
   * multiple of `every` from there to `seq`, built from the log a stretch at a
   * time on the worker. Reading any version from that checkpoint up to `seq`
   * afterwards replays at most `every` updates. Calls for one document run
   * one after the other, so that two first reads of a long document write
   * its checkpoints once.
   */
  async checkpointNear(document: DocumentName, seq: number): Promise<void> {
    const previous = this.nearWrites.get(document.name) ?? Promise.resolve();
    const mine = previous.catch(() => {}).then(() => this.writeUpTo(document, seq));
    this.nearWrites.set(document.name, mine);
    try {
      await mine;
    } finally {
      if (this.nearWrites.get(document.name) === mine) this.nearWrites.delete(document.name);
    }
  }

  /** Writes the checkpoint at exactly `seq` (from the log), unless one is there already. */
  async checkpointAt(document: DocumentName, seq: number): Promise<void> {
    await this.write(document, [seq]);
  }

  /** How many documents have a checkpoint write under way. */
  get writesUnderWay(): number {
    let count = 0;
    for (const progress of this.progress.values()) if (progress.writing) count += 1;
    return count;
  }

  forget(name: string): void {
    const progress = this.progress.get(name);
    if (progress?.writing) progress.forgotten = true;
    else this.stopFollowing(name);
  }

  /** Stops scheduling, lets the writes under way finish (or fail) and stops the builder. */
  async close(): Promise<void> {
    this.closing.abort(new Error('closing'));
    // A version read's checkpoints stop after the pass under way.
    const nearWrites = [...this.nearWrites.values()].map((writing) => writing.catch(() => {}));
    await Promise.all([...[...this.progress.values()].map((progress) => progress.writing), ...nearWrites]);
    await this.builder.close();
  }

  private async writeUntilDone(progress: Progress): Promise<void> {
    try {
      progress.checkpointSeq = await retryUntilDone(() => this.write(progress.document, [progress.latestSeq], { keep: true }), {
        firstDelayMs: 500,
        maxDelayMs: 30_000,
        signal: this.closing.signal,
        onFailure: (error, retryInMs) => {
          this.configuration.metrics.persistenceErrors.inc({ operation: 'write-checkpoint' });
          this.configuration.log.warn({ err: error, code: 'checkpoint-failed', document: progress.document.name, retryInMs }, 'writing a checkpoint failed; retrying');
        },
      });
    } catch {
      // Closing: the log holds everything; the next start writes the checkpoint.
    }
    progress.writing = null;
    // Updates may have arrived while writing: see whether the tail is long
    // again. An unloaded document is still caught up, then forgotten.
    this.advance(progress.document, progress.latestSeq);
    if (progress.forgotten && !progress.writing) this.stopFollowing(progress.document.name);
  }

  /** An unloaded document: no more live checkpoints, and the worker lets its copy go. */
  private stopFollowing(name: string): void {
    this.progress.delete(name);
    this.builder.drop(name);
  }

  private async writeUpTo(document: DocumentName, seq: number): Promise<void> {
    const base = (await this.configuration.storage.latestCheckpointSeq(document, seq)) ?? 0;
    if (seq - base <= this.configuration.every) return;
    const seqs = [];
    for (let at = (Math.floor(base / this.configuration.every) + 1) * this.configuration.every; at <= seq; at += this.configuration.every) seqs.push(at);
    for (let from = 0; from < seqs.length; from += CHECKPOINTS_PER_PASS) {
      this.closing.signal.throwIfAborted();
      await this.write(document, seqs.slice(from, from + CHECKPOINTS_PER_PASS));
    }
  }

  /**
   * Writes a checkpoint at each of `seqs` (ascending) from one read of the
   * log and one pass over it, the last at the log's end if that comes
   * first; returns the seq of the last checkpoint. Each is written as soon as
   * the worker has built it, while it builds the next. `keep`: the live
   * cadence's writes, built from the document the worker kept where it has
   * one, and keeping theirs for the next.
   */
  private async write(document: DocumentName, seqs: number[], { keep = false } = {}): Promise<number> {
    const upTo = seqs.at(-1)!;
    const fromKept = keep ? await this.logAfterKept(document, upTo) : null;
    // Null: the worker let the kept document go meanwhile.
    const written = fromKept && (await this.build(document, seqs, fromKept, keep));
    if (written) return written;
    const stored = await this.storedLog(document, upTo);
    if (!stored) return 0;
    if (stored.tail.length === 0) return stored.base.checkpoint?.seq ?? 0;
    return (await this.build(document, seqs, stored, keep))!;
  }

  /** Builds and writes the checkpoints of `seqs` that `source`'s tail reaches, and one at its end; the last one's seq, or null when the kept document it starts from is gone. */
  private async build(document: DocumentName, seqs: number[], { base, tail }: BuildSource, keep: boolean): Promise<number | null> {
    const [first, last] = [tail[0]!.seq, tail.at(-1)!.seq];
    const at = [...seqs.filter((seq) => seq >= first && seq < last), last];
    let written = Promise.resolve();
    const built = this.builder.build({ name: document.name, base, tail, at, keep }, (checkpoint) => {
      written = written.then(async () => {
        await this.configuration.storage.writeCheckpoint(document, checkpoint);
        this.configuration.metrics.checkpointsWritten.inc();
      });
      // Awaited once the build ends; a write failing before then is not unhandled.
      written.catch(() => {});
    });
    try {
      return (await built) ? last : null;
    } finally {
      await written;
    }
  }

  /** The updates after the state the worker keeps of `document`, up to `seq`; null unless there are some and none is missing (pruned meanwhile). */
  private async logAfterKept(document: DocumentName, seq: number): Promise<BuildSource | null> {
    const kept = this.builder.keptSeq(document.name);
    if (kept === undefined || kept >= seq) return null;
    const tail = await this.configuration.storage.readUpdates(document, kept, seq);
    if (tail.length === 0 || tail.some((update, index) => update.seq !== kept + 1 + index)) return null;
    return { base: { kept }, tail };
  }

  /** The newest stored checkpoint at or before `seq` and the updates after it; null when the document does not exist. */
  private async storedLog(document: DocumentName, seq: number): Promise<(BuildSource & { base: { checkpoint: Checkpoint | null } }) | null> {
    const logged = await this.configuration.storage.load(document, seq);
    return logged && { base: { checkpoint: logged.checkpoint }, tail: logged.tail };
  }
}

/** Where a build starts, and the updates it applies. */
interface BuildSource {
  base: BuildBase;
  tail: LoggedUpdate[];
}

/**
 * Replays checkpoints on a worker thread; one worker, started on first use.
 * It keeps the documents of the live cadence's builds (`BuildRequest.keep`);
 * which, and at what seq, is known here from the answers to those builds, in
 * order (one build of the live cadence per document at a time).
 */
class CheckpointBuilder {
  private worker: Worker | null = null;
  private closed = false;
  private readonly pending = new Map<number, { request: Omit<BuildRequest, 'id'>; built(checkpoint: Checkpoint): void; resolve(built: boolean): void; reject(error: Error): void }>();
  private readonly kept = new Map<string, number>();
  private nextId = 0;
  private readonly keepBytes: number;

  constructor(keepBytes: number) {
    this.keepBytes = keepBytes;
  }

  /** The seq the worker keeps this document at, if it does. */
  keptSeq(name: string): number | undefined {
    return this.kept.get(name);
  }

  /**
   * Builds the checkpoints (state and compact state) at `request.at`, seqs of
   * its tail, handing each to `built` in order; true after the last. False
   * when it was to start from a kept document the worker no longer has.
   */
  build(request: Omit<BuildRequest, 'id'>, built: (checkpoint: Checkpoint) => void): Promise<boolean> {
    const id = this.nextId++;
    const result = new Promise<boolean>((resolve, reject) => this.pending.set(id, { request, built, resolve, reject }));
    this.started().postMessage({ id, ...request } satisfies BuildRequest);
    return result;
  }

  /** Lets the worker's copy of the document go. */
  drop(name: string): void {
    if (!this.kept.delete(name)) return;
    this.worker?.postMessage({ drop: name } satisfies DropRequest);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.worker?.terminate();
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    if (this.closed) throw new Error('the checkpoint builder is closed');
    const worker = new Worker(new URL('./checkpoint-worker.ts', import.meta.url), { workerData: { keepBytes: this.keepBytes } satisfies BuilderData });
    worker.on('message', (response: BuildResponse) => {
      if (this.worker !== worker) return;
      const waiter = this.pending.get(response.id);
      if (!waiter) return;
      if ('checkpoint' in response) return waiter.built(response.checkpoint);
      this.pending.delete(response.id);
      this.noteKept(waiter.request, response);
      if ('error' in response) waiter.reject(new Error(response.error));
      else waiter.resolve('done' in response);
    });
    const failAll = (error: Error) => {
      // A replaced worker's late events concern nobody.
      if (this.worker !== worker) return;
      this.worker = null;
      this.kept.clear();
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`the checkpoint worker exited (${code})`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }

  /** What the worker keeps after a build of the live cadence ended (a version read's builds change nothing of it). */
  private noteKept({ name, keep }: Omit<BuildRequest, 'id'>, response: Exclude<BuildResponse, { checkpoint: Checkpoint }>): void {
    if (!keep) return;
    const seq = 'done' in response ? response.kept : null;
    if (seq === null) this.kept.delete(name);
    else this.kept.set(name, seq);
    if ('dropped' in response) for (const dropped of response.dropped) this.kept.delete(dropped);
  }
}
