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
  if (checkpoint) Y.applyUpdate(doc, checkpoint.state);
  for (const { update } of updates) Y.applyUpdate(doc, update);
  return doc;
}
