import { parentPort } from 'node:worker_threads';
import * as Y from 'yjs';
import type { Checkpoint } from '../db/checkpoints.ts';
import type { LoggedUpdate } from '../db/updates.ts';
import { replay } from './replay.ts';

export interface BuildRequest {
  id: number;
  base: Checkpoint | null;
  tail: LoggedUpdate[];
}

export type BuildResponse = { id: number; state: Uint8Array } | { id: number; error: string };

// Rebuilding hundreds of updates takes tens of milliseconds: off the event loop
// that relays edits and releases acknowledgements.
parentPort!.on('message', ({ id, base, tail }: BuildRequest) => {
  try {
    const doc = replay(base, tail);
    const state = Y.encodeStateAsUpdate(doc);
    doc.destroy();
    parentPort!.postMessage({ id, state } satisfies BuildResponse, [state.buffer as ArrayBuffer]);
  } catch (error) {
    parentPort!.postMessage({ id, error: String(error) } satisfies BuildResponse);
  }
});
