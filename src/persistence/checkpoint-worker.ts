import { parentPort } from 'node:worker_threads';
import * as Y from 'yjs';
import type { Checkpoint } from '../db/checkpoints.ts';
import type { LoggedUpdate } from '../db/updates.ts';
import { encodeCompact } from './compact.ts';
import { replay } from './replay.ts';

export interface BuildRequest {
  id: number;
  base: Checkpoint | null;
  tail: LoggedUpdate[];
  /** The seqs of the tail to write a checkpoint at, ascending. */
  at: number[];
}

/** Each checkpoint as it is built, then `done` (or an error). */
export type BuildResponse = { id: number; checkpoint: Checkpoint } | { id: number; done: true } | { id: number; error: string };

// Rebuilding hundreds of updates takes tens of milliseconds: off the event loop
// that relays edits and releases acknowledgements.
parentPort!.on('message', ({ id, base, tail, at }: BuildRequest) => {
  try {
    const doc = replay(base, []);
    const wanted = new Set(at);
    for (const { seq, update } of tail) {
      Y.applyUpdate(doc, update);
      if (!wanted.has(seq)) continue;
      const checkpoint = { seq, state: Y.encodeStateAsUpdate(doc), compact: encodeCompact(doc) };
      parentPort!.postMessage({ id, checkpoint } satisfies BuildResponse, [checkpoint.state.buffer as ArrayBuffer, checkpoint.compact.buffer as ArrayBuffer]);
    }
    doc.destroy();
    parentPort!.postMessage({ id, done: true } satisfies BuildResponse);
  } catch (error) {
    parentPort!.postMessage({ id, error: String(error) } satisfies BuildResponse);
  }
});
