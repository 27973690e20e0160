import { randomUUID } from 'node:crypto';
import type { TrackedEntry } from '../commit/writer.ts';
import type { EventRow, NewEventRow } from '../db/events.ts';
import type { UpdateOrigin } from '../db/updates.ts';
import { MAX_MENTIONS } from '../documents/comments.ts';
import { kindOf } from '../documents/kinds.ts';
import { splitDocumentName } from '../documents/name.ts';
import type { Json } from '../json.ts';
import type { FieldChange } from '../projection/tracker.ts';

export const eventTypes = [
  'document.created',
  'document.changed',
  'document.restored',
  'status.changed',
  'comment.added',
  'comment.resolved',
  'comment.mentioned',
] as const;

export type EventType = (typeof eventTypes)[number];

/** An event as the feed, webhooks and NATS carry it (SPEC, Events). */
export interface ChangeEvent {
  id: string;
  /** Orders the tenant's feed: the cursor of `GET /api/events`. */
  position: number;
  type: EventType;
  tenant: string;
  document: { name: string; kind: string; id: string };
  /** The document updates it covers. */
  seq: [number, number];
  actor: string;
  origin: UpdateOrigin;
  occurredAt: string;
  data: Json;
}

/** An event derived in a commit, before the feed gives it a position. */
export interface NewEvent extends NewEventRow {
  type: EventType;
}

/**
 * The events of one committed update. Every update that changed something
 * gets exactly one event that covers it and carries its field changes (as in
 * `field_changes`): `document.restored` for a restore, `document.created` for
 * a document's first update, `document.changed` otherwise. What it did that
 * other systems wait for follows, under the same seq: `status.changed`,
 * `comment.added`, `comment.resolved`, one `comment.mentioned` per newly
 * mentioned user.
 */
export function eventsOf({ update, seq, changes }: TrackedEntry): NewEvent[] {
  const { fieldChanges } = changes;
  if (fieldChanges.length === 0 && seq !== 1) return [];
  const event = (type: EventType, data: Json): NewEvent => ({
    id: randomUUID(),
    type,
    name: update.document.name,
    seq,
    actor: update.userId,
    origin: update.origin,
    occurredAt: update.receivedAt,
    data,
  });
  const listed = fieldChanges.map(asChange);
  const events = [
    update.origin === 'restore'
      ? event('document.restored', { version: update.restoredFrom ?? null, changes: listed })
      : seq === 1
        ? event('document.created', { changes: listed })
        : event('document.changed', { changes: listed }),
  ];
  const header = kindOf(update.document.kind).layout.header.entity;
  for (const change of fieldChanges) {
    if (change.entity === header && change.field === 'status') {
      events.push(event('status.changed', { from: change.oldValue, to: change.newValue }));
    } else if (change.entity === 'comment') {
      events.push(...commentEvents(change, changes.memberNow('comments', change.entityId), event));
    }
  }
  return events;
}

function commentEvents(change: FieldChange, now: Record<string, Json> | null, event: (type: EventType, data: Json) => NewEvent): NewEvent[] {
  const commentId = change.entityId;
  const events: NewEvent[] = [];
  const fields = (change.action === 'create' ? change.newValue : now) as Record<string, Json> | null;
  const place = { commentId, parentId: fields?.parentId ?? null, anchor: fields?.anchor ?? null };
  if (change.action === 'create') events.push(event('comment.added', place));
  if (change.action === 'update' && change.field === 'resolved' && change.newValue === true) events.push(event('comment.resolved', place));
  const mentioned =
    change.action === 'create' ? userIds(fields?.mentions) : change.action === 'update' && change.field === 'mentions' ? userIds(change.newValue) : [];
  const already = new Set(change.action === 'update' && change.field === 'mentions' ? userIds(change.oldValue) : []);
  for (const userId of mentioned.filter((id) => !already.has(id)).slice(0, MAX_MENTIONS)) {
    events.push(event('comment.mentioned', { commentId, userId }));
  }
  return events;
}

function userIds(value: Json | undefined): string[] {
  return Array.isArray(value) ? [...new Set(value.filter((id): id is string => typeof id === 'string'))] : [];
}

function asChange(change: FieldChange): Json {
  return { entity: change.entity, entityId: change.entityId, field: change.field, action: change.action, old: change.oldValue, new: change.newValue };
}

/** A stored event row in the envelope every consumer reads. */
export function envelope(row: EventRow): ChangeEvent {
  const document = splitDocumentName(row.name)!;
  return {
    id: row.id,
    position: Number(row.position),
    // Only eventsOf writes the column.
    type: row.type as EventType,
    tenant: row.tenant_id,
    document: { name: row.name, kind: document.kind, id: document.id },
    seq: [Number(row.seq_first), Number(row.seq_last)],
    actor: row.actor,
    origin: row.origin,
    occurredAt: new Date(row.occurred_at).toISOString(),
    data: row.data,
  };
}
