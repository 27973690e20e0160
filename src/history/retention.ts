import { parseDocumentName } from '../documents/kinds.ts';
import type { Logger } from '../log.ts';
import type { Checkpointer } from '../persistence/checkpoints.ts';
import type { PostgresRetention } from '../storage/postgres-history.ts';
import { Periodic, RETENTION_EVERY_MS, retentionCutoff } from '../maintenance.ts';


export interface PruneResult {
  documents: number;
  updates: number;
}

/** Where pruning runs: per tenant as the runtime role and, to find documents and delete, as the table owner. */
export interface PruneTarget {
  /** Called once per pass with the storage as the owner (MIGRATION_DATABASE_URL's role, or DATABASE_URL's) sees it. */
  asOwner<T>(work: (retention: PostgresRetention) => Promise<T>): Promise<T>;
  checkpointer: Checkpointer;
  log: Logger;
}

/**
 * Retention (HISTORY_RETENTION_DAYS): prunes each document's history older
 * than `before` down to checkpoints. For a document, the updates received
 * before that moment form a prefix of its log, up to seq S. A checkpoint is
 * made at S (from the log), then the updates before S are deleted: the
 * document still loads, every version from S on stays exact, and older ones
 * remain exactly where a checkpoint is. Only the owner role deletes; the
 * runtime role cannot delete any update.
 */
export async function pruneHistory(target: PruneTarget, before: Date, shouldStop: () => boolean = () => false): Promise<PruneResult> {
  const result: PruneResult = { documents: 0, updates: 0 };
  await target.asOwner(async (retention) => {
    const candidates = await retention.documentsWithUpdatesBefore(before);
    for (const { tenant_id: tenant, name } of candidates) {
      if (shouldStop()) return;
      const document = { ...parseDocumentName(name), tenant };
      const { upto, exactFrom } = await retention.prefixBefore(document, before);
      // Seq 1 alone has nothing before it; a prefix already pruned this far has nothing new.
      if (upto <= 1 || upto <= exactFrom) continue;
      await target.checkpointer.checkpointAt(document, upto);
      const deleted = await retention.storage.prune(document, upto);
      if (deleted === 0) continue;
      result.documents += 1;
      result.updates += deleted;
      target.log.info({ code: 'history-pruned', document: name, exactFrom: upto, deleted }, 'pruned old history down to checkpoints');
    }
  });
  return result;
}

/** Runs `pruneHistory` when the server starts and every hour after (a pass under way stops after its current document). */
export function historyRetention(target: PruneTarget, days: number): Periodic {
  return new Periodic(RETENTION_EVERY_MS, (shouldStop) =>
    pruneHistory(target, retentionCutoff(days), shouldStop).then(
      (result) => void (result.updates > 0 && target.log.info({ code: 'history-retention', days, ...result }, 'history retention pass done')),
      (error) => target.log.error({ err: error, code: 'history-prune-failed' }, 'pruning old history failed; retrying in an hour'),
    ),
  );
}
