import { setTimeout as sleep } from 'node:timers/promises';
import * as Y from 'yjs';
import { insertCheckpoint, latestCheckpoint } from '../db/checkpoints.ts';
import type { Database } from '../db/database.ts';
import { readUpdates } from '../db/updates.ts';
import type { DocumentName } from '../documents/name.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { replay } from './replay.ts';

interface Progress {
  document: DocumentName;
  checkpointSeq: number;
  latestSeq: number;
  writing: boolean;
}

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

/**
 * Writes checkpoints in the background so that loading a document never
 * replays more than about `every` updates. A checkpoint is built from the log
 * itself (previous checkpoint + updates up to a seq), never from the live
 * document, so it is exactly the state after that seq whoever wrote it.
 */
export class Checkpointer {
  private readonly progress = new Map<string, Progress>();
  private closed = false;

  private readonly db: Database;
  private readonly every: number;
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(db: Database, every: number, log: Logger, metrics: Metrics) {
    this.db = db;
    this.every = every;
    this.log = log;
    this.metrics = metrics;
  }

  /** Records where a document stands; writes a checkpoint if its tail is long. */
  advance(document: DocumentName, latestSeq: number, checkpointSeq?: number): void {
    const current = this.progress.get(document.name);
    const progress = current ?? { document, checkpointSeq: checkpointSeq ?? 0, latestSeq, writing: false };
    progress.latestSeq = Math.max(progress.latestSeq, latestSeq);
    if (checkpointSeq !== undefined) progress.checkpointSeq = Math.max(progress.checkpointSeq, checkpointSeq);
    this.progress.set(document.name, progress);
    if (!progress.writing && progress.latestSeq - progress.checkpointSeq >= this.every) {
      progress.writing = true;
      void this.writeUntilDone(progress);
    }
  }

  forget(name: string): void {
    const progress = this.progress.get(name);
    if (progress && !progress.writing) this.progress.delete(name);
  }

  close(): void {
    this.closed = true;
  }

  private async writeUntilDone(progress: Progress): Promise<void> {
    for (let delay = RETRY_FIRST_MS; !this.closed; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      try {
        progress.checkpointSeq = await this.write(progress.document, progress.latestSeq);
        break;
      } catch (error) {
        this.metrics.persistenceErrors.inc({ operation: 'write-checkpoint' });
        this.log.warn({ err: error, code: 'checkpoint-failed', document: progress.document.name, retryInMs: delay }, 'writing a checkpoint failed; retrying');
        await sleep(delay);
      }
    }
    progress.writing = false;
    // Updates may have arrived while writing: see whether the tail is long again.
    if (!this.closed) this.advance(progress.document, progress.latestSeq);
  }

  private async write(document: DocumentName, seq: number): Promise<number> {
    const { base, tail } = await this.db.transaction(document.tenant, async (sql) => {
      const base = await latestCheckpoint(sql, document.name, seq);
      return { base, tail: await readUpdates(sql, document.name, base?.seq ?? 0, seq) };
    });
    if (tail.length === 0) return base?.seq ?? 0;
    const doc = replay(base, tail);
    const state = Y.encodeStateAsUpdate(doc);
    doc.destroy();
    const checkpointSeq = tail.at(-1)!.seq;
    await this.db.transaction(document.tenant, (sql) => insertCheckpoint(sql, document.name, { seq: checkpointSeq, state }));
    return checkpointSeq;
  }
}
