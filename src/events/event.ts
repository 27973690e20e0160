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
 * The events of a commit's updates. Every update that changed something is
 * covered by exactly one event that carries its field changes (as in
 * `field_changes`): `document.restored` for a restore, `document.created` for
 * a document's first update, `document.changed` otherwise. Consecutive
 * updates of one document by one author in one commit (typing at full speed)
 * share that event, its `seq` their range and its changes merged per field
 * (the old value before the first, the new after the last): a keystroke's
 * event would otherwise carry the whole text twice. What an update did that
 * other systems wait for follows under its own seq: `status.changed`,
 * `comment.added`, `comment.resolved`, one `comment.mentioned` per newly
 * mentioned user.
 */
export function eventsOf(entries: TrackedEntry[]): NewEvent[] {
  const events: NewEvent[] = [];
  for (const updates of Map.groupBy(entries, (entry) => entry.update.document.name).values()) {
    let run: TrackedEntry[] = [];
    for (const entry of updates) {
      if (run.length > 0 && !continues(run.at(-1)!, entry)) {
        events.push(...eventsOfRun(run));
        run = [];
      }
      run.push(entry);
    }
    events.push(...eventsOfRun(run));
  }
  return events;
}

/** Whether `next` joins the event of `previous`: the next update, by the same author, the same way (a restore stands alone). */
function continues(previous: TrackedEntry, next: TrackedEntry): boolean {
  const [a, b] = [previous.update, next.update];
  return next.seq === previous.seq + 1 && a.userId === b.userId && a.origin === b.origin && b.origin !== 'restore';
}

function eventsOfRun(run: TrackedEntry[]): NewEvent[] {
  const first = run[0]!;
  const last = run.at(-1)!;
  if (first.seq !== 1 && run.every((entry) => entry.changes.fieldChanges.length === 0)) return [];
  const { update } = first;
  const event = (type: EventType, data: Json, seqFirst = first.seq, seqLast = last.seq): NewEvent => ({
    id: randomUUID(),
    type,
    name: update.document.name,
    seqFirst,
    seqLast,
    actor: update.userId,
    origin: update.origin,
    occurredAt: last.update.receivedAt,
    data,
  });
  const changes = mergedChanges(run.flatMap((entry) => entry.changes.fieldChanges));
  const events = [
    update.origin === 'restore'
      ? event('document.restored', { version: update.restoredFrom ?? null, changes })
      : first.seq === 1
        ? event('document.created', { changes })
        : event('document.changed', { changes }),
  ];
  const header = kindOf(update.document.kind).layout.header.entity;
  for (const { seq, changes } of run) {
    const own = (type: EventType, data: Json) => event(type, data, seq, seq);
    for (const change of changes.fieldChanges) {
      if (change.entity === header && change.field === 'status') {
        events.push(own('status.changed', { from: change.oldValue, to: change.newValue }));
      } else if (change.entity === 'comment') {
        events.push(...commentEvents(change, changes.memberNow('comments', change.entityId), own));
      }
    }
  }
  return events;
}

/** One change per field: the old value before the first change, the action and the new value of the last (a member created then changed stays created). */
function mergedChanges(changes: FieldChange[]): Json[] {
  const merged = new Map<string, { entity: string; entityId: string | null; field: string; action: FieldChange['action']; old: Json; new: Json }>();
  for (const change of changes) {
    const key = JSON.stringify([change.entity, change.entityId, change.field]);
    const earlier = merged.get(key);
    const action = earlier?.action === 'create' && change.action !== 'delete' ? 'create' : change.action;
    merged.set(key, { entity: change.entity, entityId: change.entityId, field: change.field, action, old: earlier ? earlier.old : change.oldValue, new: change.newValue });
  }
  return [...merged.values()];
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
