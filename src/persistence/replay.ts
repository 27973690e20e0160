import * as Y from 'yjs';
import type { Checkpoint } from '../db/checkpoints.ts';
import type { LoggedUpdate } from '../db/updates.ts';

/**
 * A document rebuilt from a checkpoint and the updates after it. Updates are
 * applied one by one (microseconds each); Y.mergeUpdates over thousands of
 * small updates is super-linear.
 */
export function replay(checkpoint: Checkpoint | null, updates: LoggedUpdate[]): Y.Doc {
  const doc = new Y.Doc();
  applyStored(doc, checkpoint, updates);
  return doc;
}

/**
 * Applies a checkpoint and the updates after it to `into` without emitting
 * `update` to its listeners. Yjs encodes a transaction's update only when
 * `update` has listeners, and Hocuspocus's Document listens from its
 * constructor to queue a broadcast, merging the queue with Y.mergeUpdates:
 * for a loading document those are two more whole passes over its history
 * (about 40 and 50 – 150 ms for a 100,000-update quote) for connections that
 * do not exist yet; each connection gets the content through its own sync.
 */
export function applyStored(into: Y.Doc, checkpoint: Checkpoint | null, updates: LoggedUpdate[]): void {
  const listeners = into._observers.get('update');
  into._observers.delete('update');
  try {
    if (checkpoint) Y.applyUpdate(into, checkpoint.state);
    for (const { update } of updates) Y.applyUpdate(into, update);
  } finally {
    if (listeners) into._observers.set('update', listeners);
  }
}
