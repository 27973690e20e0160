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

/** Lets a kept document go (it was unloaded). */
export interface DropRequest {
  drop: string;
}

/**
 * Each checkpoint as it is built, then `done`: for a build that keeps its
 * document, the seq it is now kept at (null: it was not, being over the
 * budget alone) and the documents let go to stay within `keepBytes`. `gone`:
 * the document was no longer kept at the seq asked for (let go for another
 * one meanwhile, or the worker is new); nothing was built. Or an error.
 */
export type BuildResponse =
  | { id: number; checkpoint: Checkpoint }
  | { id: number; done: true; kept: number | null; dropped: string[] }
  | { id: number; gone: true }
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

/** The kept document at `seq`, taken out of `kept`; undefined when it is not kept at that seq. */
function takeKept(name: string, seq: number): Y.Doc | undefined {
  if (kept.get(name)?.seq !== seq) return undefined;
  return take(name)!.doc;
}

/**
 * Keeps `doc` at `seq` (newest last), then lets the oldest go while over the
 * budget; the names let go. A document over the budget alone is not kept,
 * and the others stay.
 */
function keep(name: string, doc: Y.Doc, seq: number, bytes: number): string[] {
  release(name);
  if (bytes > keepBytes) {
    doc.destroy();
    return [];
  }
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
    doc = 'kept' in base ? takeKept(name, base.kept) : replay(base.checkpoint, []);
    if (!doc) return parentPort!.postMessage({ id, gone: true } satisfies BuildResponse);
    const wanted = new Set(at);
    let stateBytes = 0;
    for (const { seq, update } of tail) {
      Y.applyUpdate(doc, update);
      if (!wanted.has(seq)) continue;
      const checkpoint = { seq, state: Y.encodeStateAsUpdate(doc), compact: encodeCompact(doc) };
      stateBytes = checkpoint.state.byteLength;
      parentPort!.postMessage({ id, checkpoint } satisfies BuildResponse, [checkpoint.state.buffer as ArrayBuffer, checkpoint.compact.buffer as ArrayBuffer]);
    }
    if (!keepIt) {
      doc.destroy();
      return parentPort!.postMessage({ id, done: true, kept: null, dropped: [] } satisfies BuildResponse);
    }
    // The tail ends at the last checkpoint built (Checkpointer.write): the document is kept at that seq.
    const dropped = keep(name, doc, tail.at(-1)!.seq, stateBytes);
    parentPort!.postMessage({ id, done: true, kept: kept.get(name)?.seq ?? null, dropped } satisfies BuildResponse);
  } catch (error) {
    doc?.destroy();
    // A failed build of the live cadence keeps nothing of its document (the main thread forgets it too).
    if (keepIt) release(name);
    parentPort!.postMessage({ id, error: String(error) } satisfies BuildResponse);
  }
});
