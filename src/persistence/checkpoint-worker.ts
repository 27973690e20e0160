import { parentPort, workerData } from 'node:worker_threads';
import * as Y from 'yjs';
import type { Checkpoint } from '../db/checkpoints.ts';
import type { LoggedUpdate } from '../db/updates.ts';
import { encodeCompact } from './compact.ts';
import { replay } from './replay.ts';

/** What the worker is started with. */
export interface BuilderData {
  /** Most bytes of encoded state the kept documents may add up to. */
  keepBytes: number;
}

/** Where a build starts: a stored checkpoint (or the log's beginning), or the document as the worker kept it at seq `kept`. */
export type BuildBase = { checkpoint: Checkpoint | null } | { kept: number };

export interface BuildRequest {
  id: number;
  /** The document's name (tenant included). */
  name: string;
  base: BuildBase;
  tail: LoggedUpdate[];
  /** The seqs of the tail to write a checkpoint at, ascending. */
  at: number[];
  /** Keep the document once built, to start its next build from (the live cadence's builds; not a version read's). */
  keep: boolean;
}

/** A document the worker no longer keeps (see `BuildResponse.dropped`). */
export interface DropRequest {
  drop: string;
}

/**
 * Each checkpoint as it is built, then `done`: the seq the worker now keeps
 * the document at (none: it keeps none of it), and the documents it let go
 * to stay within `keepBytes`. Or an error.
 */
export type BuildResponse =
  | { id: number; checkpoint: Checkpoint }
  | { id: number; done: true; name: string; kept: number | null; dropped: string[] }
  | { id: number; error: string };

interface Kept {
  doc: Y.Doc;
  seq: number;
  bytes: number;
}

const { keepBytes } = workerData as BuilderData;
/**
 * The documents built last, oldest first. Replaying a long-edited document
 * from its stored checkpoint is most of a build (every overwritten value is
 * a struct to integrate again); kept, the next build applies its tail alone.
 */
const kept = new Map<string, Kept>();
let keptBytes = 0;

/** Takes the kept document of `name` out of `kept`, if any. */
function take(name: string): Kept | undefined {
  const entry = kept.get(name);
  if (!entry) return undefined;
  kept.delete(name);
  keptBytes -= entry.bytes;
  return entry;
}

function release(name: string): void {
  take(name)?.doc.destroy();
}

function startingDoc(name: string, base: BuildBase): Y.Doc {
  if ('checkpoint' in base) return replay(base.checkpoint, []);
  const entry = take(name);
  // The main thread knows what is kept from the answers, in order: a mismatch is a bug, and the build fails rather than guess.
  if (entry?.seq !== base.kept) {
    entry?.doc.destroy();
    throw new Error(`${name} is not kept at ${base.kept} (${entry ? `at ${entry.seq}` : 'not kept'})`);
  }
  return entry.doc;
}

/** Keeps `doc` at `seq` (newest last), then lets the oldest go while over the budget; the names let go. */
function keep(name: string, doc: Y.Doc, seq: number, bytes: number): string[] {
  release(name);
  kept.set(name, { doc, seq, bytes });
  keptBytes += bytes;
  const dropped: string[] = [];
  for (const oldest of kept.keys()) {
    if (keptBytes <= keepBytes) break;
    release(oldest);
    dropped.push(oldest);
  }
  return dropped;
}

// Rebuilding hundreds of updates takes tens of milliseconds: off the event loop
// that relays edits and releases acknowledgements.
parentPort!.on('message', (message: BuildRequest | DropRequest) => {
  if ('drop' in message) return release(message.drop);
  const { id, name, base, tail, at, keep: keepIt } = message;
  let doc: Y.Doc | undefined;
  try {
    doc = startingDoc(name, base);
    const wanted = new Set(at);
    let stateBytes = 0;
    for (const { seq, update } of tail) {
      Y.applyUpdate(doc, update);
      if (!wanted.has(seq)) continue;
      const checkpoint = { seq, state: Y.encodeStateAsUpdate(doc), compact: encodeCompact(doc) };
      stateBytes = checkpoint.state.byteLength;
      parentPort!.postMessage({ id, checkpoint } satisfies BuildResponse, [checkpoint.state.buffer as ArrayBuffer, checkpoint.compact.buffer as ArrayBuffer]);
    }
    let dropped: string[] = [];
    if (keepIt && tail.length > 0) dropped = keep(name, doc, tail.at(-1)!.seq, stateBytes);
    else doc.destroy();
    parentPort!.postMessage({ id, done: true, name, kept: kept.get(name)?.seq ?? null, dropped } satisfies BuildResponse);
  } catch (error) {
    doc?.destroy();
    release(name);
    parentPort!.postMessage({ id, error: String(error) } satisfies BuildResponse);
  }
});
