import * as Y from 'yjs';
import { latestCheckpoint, type Checkpoint } from '../db/checkpoints.ts';
import type { Sql } from '../db/database.ts';
import { readUpdates, type LoggedUpdate } from '../db/updates.ts';

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

/** What rebuilds a document at `version`: the latest checkpoint at or before it and the updates after that. */
export async function stateAt(sql: Sql, name: string, version: number): Promise<{ checkpoint: Checkpoint | null; tail: LoggedUpdate[] }> {
  const checkpoint = await latestCheckpoint(sql, name, version);
  return { checkpoint, tail: await tailAfter(sql, name, checkpoint, version) };
}

/**
 * The updates after `checkpoint` up to `version`. Throws if one is missing
 * (pruned by retention between reading the checkpoint and these): replaying
 * around a hole would give a wrong document, and reading again finds the
 * newer checkpoint.
 */
export async function tailAfter(sql: Sql, name: string, checkpoint: Checkpoint | null, version: number): Promise<LoggedUpdate[]> {
  const tail = await readUpdates(sql, name, checkpoint?.seq ?? 0, version);
  if (tail.length !== version - (checkpoint?.seq ?? 0)) {
    throw new Error(`${name}: updates ${(checkpoint?.seq ?? 0) + 1} to ${version} are not all in the log (pruned meanwhile?); read again`);
  }
  return tail;
}
