import { EventEmitter } from 'node:events';
import type { CommitWriter, PreparedWrite, TrackedEntry } from '../commit/writer.ts';
import { insertEvents } from '../db/events.ts';
import { eventsOf } from './event.ts';

export interface EventWriterEvents {
  /** Once a commit with events landed: its tenant (readers, webhooks and NATS wake up). */
  committed: [tenant: string];
}

/**
 * Writes `change_events`, the outbox: the events of a commit's updates, in the
 * same transaction as their log rows (see eventsOf for which events). Nothing
 * is remembered between commits.
 */
export class EventWriter extends EventEmitter<EventWriterEvents> implements CommitWriter {
  readonly name = 'events';
  /** An event exists for every committed change, even one whose audit rows or tables could not be written. */
  readonly essential = true;

  prepare(entries: TrackedEntry[]): PreparedWrite {
    const insert = insertEvents(eventsOf(entries));
    if (!insert) return { statements: [], committed: () => {} };
    const tenant = entries[0]!.update.document.tenant;
    return { statements: [insert], committed: () => this.emit('committed', tenant) };
  }

  forget(): void {}
}
