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

export type BuildResponse = { id: number; checkpoints: Checkpoint[] } | { id: number; error: string };

// Rebuilding hundreds of updates takes tens of milliseconds: off the event loop
// that relays edits and releases acknowledgements.
parentPort!.on('message', ({ id, base, tail, at }: BuildRequest) => {
  try {
    const doc = replay(base, []);
    const wanted = new Set(at);
    const checkpoints: Checkpoint[] = [];
    for (const { seq, update } of tail) {
      Y.applyUpdate(doc, update);
      if (wanted.has(seq)) checkpoints.push({ seq, state: Y.encodeStateAsUpdate(doc), compact: encodeCompact(doc) });
    }
    doc.destroy();
    const buffers = checkpoints.flatMap(({ state, compact }) => [state.buffer, compact!.buffer] as ArrayBuffer[]);
    parentPort!.postMessage({ id, checkpoints } satisfies BuildResponse, buffers);
  } catch (error) {
    parentPort!.postMessage({ id, error: String(error) } satisfies BuildResponse);
  }
});
