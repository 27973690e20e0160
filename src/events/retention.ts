import type { OwnerDatabase } from '../db/database.ts';
import { pruneEventsBefore } from '../db/events.ts';
import type { Logger } from '../log.ts';
import { Periodic, RETENTION_EVERY_MS, retentionCutoff } from '../maintenance.ts';

/**
 * Prunes change events older than `days` when the server starts and every
 * hour after, as the owner (the runtime role cannot delete an event); each
 * feed remembers how far it was pruned, so an older cursor is refused
 * (`cursor-expired`) instead of silently missing events.
 */
export function eventRetention(owner: OwnerDatabase, days: number, log: Logger): Periodic {
  return new Periodic(RETENTION_EVERY_MS, async () => {
    try {
      const deleted = await owner.transaction((sql) => pruneEventsBefore(sql, retentionCutoff(days)));
      if (deleted > 0) log.info({ code: 'events-retention', days, deleted }, 'pruned old change events');
    } catch (error) {
      log.error({ err: error, code: 'events-prune-failed' }, 'pruning old change events failed; retrying in an hour');
    }
  });
}
