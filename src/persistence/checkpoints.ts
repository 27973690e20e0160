import { Worker } from 'node:worker_threads';
import type { Checkpoint } from '../db/checkpoints.ts';
import type { LoggedUpdate } from '../db/updates.ts';
import type { DocumentName } from '../documents/name.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { Storage } from '../storage/storage.ts';
import type { BuildRequest, BuildResponse } from './checkpoint-worker.ts';
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

/**
 * Writes checkpoints in the background so that loading a document never
 * replays more than about `every` updates. A checkpoint is built from the log
 * itself (previous checkpoint + updates up to a seq), never from the live
 * document, so it is exactly the state after that seq whoever wrote it.
 */
export class Checkpointer {
  private readonly progress = new Map<string, Progress>();
  /** Per document, the last of the `checkpointNear` calls, which run one after the other. */
  private readonly nearWrites = new Map<string, Promise<void>>();
  private readonly builder = new CheckpointBuilder();
  private readonly closing = new AbortController();

  private readonly storage: Storage;
  /** Updates between checkpoints: the most a load or a version read replays. */
  readonly every: number;
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(storage: Storage, every: number, log: Logger, metrics: Metrics) {
    this.storage = storage;
    this.every = every;
    this.log = log;
    this.metrics = metrics;
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
    if (!progress.writing && !this.closing.signal.aborted && progress.latestSeq - progress.checkpointSeq >= this.every) {
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
    else this.progress.delete(name);
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
      progress.checkpointSeq = await retryUntilDone(() => this.write(progress.document, [progress.latestSeq]), {
        firstDelayMs: 500,
        maxDelayMs: 30_000,
        signal: this.closing.signal,
        onFailure: (error, retryInMs) => {
          this.metrics.persistenceErrors.inc({ operation: 'write-checkpoint' });
          this.log.warn({ err: error, code: 'checkpoint-failed', document: progress.document.name, retryInMs }, 'writing a checkpoint failed; retrying');
        },
      });
    } catch {
      // Closing: the log holds everything; the next start writes the checkpoint.
    }
    progress.writing = null;
    // Updates may have arrived while writing: see whether the tail is long
    // again. An unloaded document is still caught up, then forgotten.
    this.advance(progress.document, progress.latestSeq);
    if (progress.forgotten && !progress.writing) this.progress.delete(progress.document.name);
  }

  private async writeUpTo(document: DocumentName, seq: number): Promise<void> {
    const base = (await this.storage.latestCheckpointSeq(document, seq)) ?? 0;
    if (seq - base <= this.every) return;
    const seqs = [];
    for (let at = (Math.floor(base / this.every) + 1) * this.every; at <= seq; at += this.every) seqs.push(at);
    for (let from = 0; from < seqs.length; from += CHECKPOINTS_PER_PASS) {
      this.closing.signal.throwIfAborted();
      await this.write(document, seqs.slice(from, from + CHECKPOINTS_PER_PASS));
    }
  }

  /**
   * Writes a checkpoint at each of `seqs` (ascending) from one read of the
   * log and one pass over it, the last at the log's end if that comes
   * first; returns the seq of the last checkpoint. Each is written as soon as
   * the worker has built it, while it builds the next.
   */
  private async write(document: DocumentName, seqs: number[]): Promise<number> {
    const logged = await this.storage.load(document, seqs.at(-1));
    if (!logged || logged.tail.length === 0) return logged?.checkpoint?.seq ?? 0;
    const [first, last] = [logged.tail[0]!.seq, logged.tail.at(-1)!.seq];
    let written = Promise.resolve();
    const built = this.builder.build(logged.checkpoint, logged.tail, [...seqs.filter((seq) => seq >= first && seq < last), last], (checkpoint) => {
      written = written.then(async () => {
        await this.storage.writeCheckpoint(document, checkpoint);
        this.metrics.checkpointsWritten.inc();
      });
      // Awaited once the build ends; a write failing before then is not unhandled.
      written.catch(() => {});
    });
    try {
      await built;
    } finally {
      await written;
    }
    return last;
  }
}

/** Replays checkpoints on a worker thread; one worker, started on first use. */
class CheckpointBuilder {
  private worker: Worker | null = null;
  private closed = false;
  private readonly pending = new Map<number, { built(checkpoint: Checkpoint): void; resolve(): void; reject(error: Error): void }>();
  private nextId = 0;

  /** Builds the checkpoints (state and compact state) at `at`, seqs of `tail`, handing each to `built` in order; resolves after the last. */
  build(base: Checkpoint | null, tail: LoggedUpdate[], at: number[], built: (checkpoint: Checkpoint) => void): Promise<void> {
    const id = this.nextId++;
    const result = new Promise<void>((resolve, reject) => this.pending.set(id, { built, resolve, reject }));
    this.started().postMessage({ id, base, tail, at } satisfies BuildRequest);
    return result;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.worker?.terminate();
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    if (this.closed) throw new Error('the checkpoint builder is closed');
    const worker = new Worker(new URL('./checkpoint-worker.ts', import.meta.url));
    worker.on('message', (response: BuildResponse) => {
      if (this.worker !== worker) return;
      const waiter = this.pending.get(response.id);
      if ('checkpoint' in response) return waiter?.built(response.checkpoint);
      this.pending.delete(response.id);
      if ('error' in response) waiter?.reject(new Error(response.error));
      else waiter?.resolve();
    });
    const failAll = (error: Error) => {
      // A replaced worker's late events concern nobody.
      if (this.worker !== worker) return;
      this.worker = null;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`the checkpoint worker exited (${code})`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }
}
