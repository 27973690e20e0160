import * as Y from 'yjs';
import { z } from 'zod';
import { COMMENTS } from '../auth/access.ts';
import type { Role } from '../auth/tokens.ts';
import type { DocumentKindModule } from '../documents/kind.ts';
import type { CollectionLayout } from '../documents/layout.ts';
import type { Write } from '../documents/update-scope.ts';
import { ConcordError, type ErrorCode } from '../errors.ts';
import type { Json } from '../json.ts';
import type { FieldPolicy } from './field-policies.ts';
import type { Lock } from './locks.ts';

/** What a write is judged against: the document as it is now, who writes, the tenant's field permissions, the locks held. */
export interface RuleContext {
  kind: DocumentKindModule<unknown>;
  doc: Y.Doc;
  actor: { userId: string; role: Role };
  policy: FieldPolicy;
  locks: readonly Lock[];
  now: number;
  /** Whether the update removes again what the document has removed already (read only when needed): see newMemberProblems. */
  removesAgain: () => boolean;
}

/** One write, as the rules see it: the field it touches and the lock target it falls under. */
interface Touch {
  write: Write;
  /** `<entity>.<field>`, or the entity alone for a member added or removed as a whole. */
  field: string;
  /** The lock target covering it (`field:<key>`, `line:<id>`, ...), if any. */
  target: string | null;
  /** The layout violation it commits, if any. */
  violation: string | null;
}

const RELOAD = 'the whole change was not applied: reload the document';

/**
 * Judges an update's writes before it is applied, in this order: frozen
 * status and transitions, valid values, field permissions, locks. Returns the
 * refusal naming every field that breaks the first rule broken, or null.
 */
export function judgeWrites(writes: Write[], context: RuleContext): ConcordError | null {
  const touches = withoutConsequences(writes).map((write) => touchOf(write, context));
  return statusRefusal(touches, context) ?? valueRefusal(touches, context) ?? permissionRefusal(touches, context) ?? lockRefusal(touches, context);
}

function refusal(code: ErrorCode, message: string, touches: Touch[], extra: Pick<ConcordError['details'], 'target' | 'holder'> = {}): ConcordError {
  const fields = [...new Set(touches.map((touch) => touch.field))];
  return new ConcordError(code, `${message}; ${RELOAD}`, { details: { fields, ...extra } });
}

/**
 * The writes that say what the update does: without the removal of a value it
 * sets anew (an overwrite deletes the old item), and without the removal of
 * what lies inside a member it removes (Yjs deletes a type's content with it).
 */
function withoutConsequences(writes: Write[]): Write[] {
  const removedMembers = new Set(writes.filter((write) => write.deletion && write.path === 'member').map((write) => write.top));
  // The keys the update sets, per root map (header fields) and per member.
  const setKeys = new Map<string | Y.Item, Set<string>>();
  for (const write of writes) {
    if (write.deletion || write.key === null || write.path === 'other') continue;
    const owner = write.path === 'member' ? write.root : write.top;
    setKeys.set(owner, (setKeys.get(owner) ?? new Set()).add(write.key));
  }
  return writes.filter((write) => {
    if (!write.deletion) return true;
    if (write.path === 'member') return write.key === null || !setKeys.get(write.root)?.has(write.key);
    if (removedMembers.has(write.top)) return false;
    return write.path !== 'member-field' || write.key === null || !setKeys.get(write.top)?.has(write.key);
  });
}

// --- where a write lands -----------------------------------------------------

function touchOf(write: Write, { kind }: RuleContext): Touch {
  const { layout } = kind;
  if (write.root === layout.header.key) {
    const key = write.topKey;
    const schema = key === null ? undefined : layout.header.fields[key];
    const field = `${layout.header.entity}.${key}`;
    const violation = !schema ? `not a field of ${layout.header.entity}` : write.path !== 'member' ? 'holds a value, not a nested type' : valueViolation(write, schema);
    return { write, field, target: `field:${key}`, violation };
  }
  if (layout.texts.includes(write.root)) {
    const violation = write.content === 'map' && !write.deletion ? 'holds plain text' : null;
    return { write, field: `${layout.header.entity}.${write.root}`, target: `field:${write.root}`, violation };
  }
  const collection = layout.collections[write.root];
  if (!collection) return { write, field: write.root, target: null, violation: `not part of the ${layout.header.entity} layout` };
  const id = memberIdOf(write);
  const target = collection.member && id !== null && !write.memberIsNew ? `${collection.member}:${id}` : null;
  if (write.path === 'member') {
    const violation = write.deletion || write.content === 'map' || write.content === 'deleted' ? null : `holds ${collection.entity} maps`;
    return { write, field: collection.entity, target, violation };
  }
  return { write, field: `${collection.entity}.${write.inner}`, target, violation: memberFieldViolation(write, collection) };
}

function memberFieldViolation(write: Write, collection: CollectionLayout): string | null {
  const key = write.inner!;
  if (Object.hasOwn(collection.richText ?? {}, key)) {
    // The fragment itself is set once; edits inside it are rich text.
    return write.path === 'other' || write.deletion || write.content === 'fragment' || write.content === 'deleted' ? null : 'holds a Y.XmlFragment';
  }
  const schema = collection.fields[key];
  if (!schema) return `not a field of ${collection.entity}`;
  if (write.path === 'other') return 'holds a value, not a nested type';
  if (key === 'id' && !write.memberIsNew) return 'a member keeps its id';
  return valueViolation(write, schema);
}

/** Why a value written (or a key deleted) breaks the field's schema, or null. */
function valueViolation(write: Write, schema: z.ZodType<Json>): string | null {
  if (write.content === 'deleted') return null;
  if (write.deletion) return schema.safeParse(undefined).success ? null : 'may not be removed';
  if (write.content !== 'value') return 'holds a value, not a nested type';
  if (write.values.length !== 1) return 'holds one value';
  const result = settable(schema).safeParse(write.values[0]);
  return result.success ? null : result.error.issues.map((issue) => issue.message).join(', ');
}

/** A field's schema as a write sets it: its default fills only a missing key. */
function settable(schema: z.ZodType<Json>): z.ZodType<Json> {
  return schema instanceof z.ZodDefault ? (schema.unwrap() as z.ZodType<Json>) : schema;
}

/** The id of the member a write lies in: the doc's member's `id`, or, for a new member, null (its id write is judged as a value). */
function memberIdOf(write: Write): string | null {
  const content = write.top.content;
  // A member the update creates is not in the doc yet: its id is one of the update's writes.
  if (!(content instanceof Y.ContentType) || !(content.type instanceof Y.Map) || content.type.doc === null) return null;
  const id = (content.type as Y.Map<unknown>).get('id');
  return typeof id === 'string' ? id : null;
}

// --- frozen statuses and transitions ----------------------------------------

function statusRefusal(touches: Touch[], { kind, doc, actor }: RuleContext): ConcordError | null {
  const { layout, workflow } = kind;
  const entity = layout.header.entity;
  const schema = layout.header.fields[workflow.field]!;
  const read = schema.safeParse(doc.getMap(layout.header.key).get(workflow.field));
  const current = read.success ? (read.data as string) : null;
  // A status removed (not overwritten: see withoutConsequences) reads as the default.
  const statusWrites = touches.filter((touch) => touch.field === `${entity}.${workflow.field}` && touch.write.path === 'member' && touch.write.content !== 'deleted');
  const next = statusWrites.map(({ write }) => (write.deletion ? schema.safeParse(undefined).data : write.values[0]));
  const changes = [...new Set(next)].filter((status): status is string => typeof status === 'string' && status !== current && workflow.transitions[status] !== undefined);
  const frozen = current !== null && workflow.frozen.has(current);
  if (frozen && changes.length > 0 && actor.role !== 'admin') {
    return refusal('document-frozen', `the ${entity} is ${current}, which freezes it: only an admin may change its status`, statusWrites);
  }
  const allowed = current === null ? null : (workflow.transitions[current] ?? []);
  const bad = allowed && changes.find((status) => !allowed.includes(status));
  if (bad) {
    return refusal('bad-transition', `a ${entity} may not go from ${current} to ${bad} (from ${current}: ${allowed.join(', ') || 'none'})`, statusWrites);
  }
  if (!frozen || changes.length > 0) return null;
  const content = touches.filter((touch) => touch.write.root !== COMMENTS);
  if (content.length === 0) return null;
  return refusal('document-frozen', `the ${entity} is ${current}, which freezes its content (comments stay open; an admin may reopen it)`, content);
}

// --- valid values -------------------------------------------------------------

function valueRefusal(touches: Touch[], context: RuleContext): ConcordError | null {
  const { kind } = context;
  const broken = touches.filter((touch) => touch.violation !== null);
  const memberProblems = newMemberProblems(touches, context);
  if (broken.length === 0 && memberProblems.length === 0) return null;
  const reasons = [...broken.map((touch) => `${touch.field}: ${touch.violation}`), ...memberProblems.map((problem) => `${problem.field}: ${problem.violation}`)];
  return refusal('invalid-value', `the change breaks the ${kind.layout.header.entity} layout (${[...new Set(reasons)].join('; ')})`, [...broken, ...memberProblems]);
}

/**
 * New members without an id, or with one another new member or a member of
 * the document has (unless the update removes a member with that id: a move). Two people moving one
 * line at once (each removes it and inserts a copy) leave two copies, which
 * Yjs keeps and the second could not have known of: an update that removes
 * again what the document removed already (its sender had not seen the other
 * move; a sync resends every removal) may bring an id the document holds.
 */
function newMemberProblems(touches: Touch[], { kind, doc, removesAgain }: RuleContext): Touch[] {
  const problems: Touch[] = [];
  for (const [root, collection] of Object.entries(kind.layout.collections)) {
    const added = touches.filter(({ write }) => write.root === root && write.path === 'member' && write.memberIsNew && write.content === 'map' && !write.deletion);
    if (added.length === 0) continue;
    const removed = new Set(touches.filter(({ write }) => write.root === root && write.path === 'member' && write.deletion).map(({ write }) => write.top));
    // The ids the update moves (removes one member of) may come back once, whatever other copy the document holds.
    const held = new Set<unknown>();
    const moved = new Set<unknown>();
    doc.getArray<unknown>(root).forEach((member) => {
      if (member instanceof Y.Map) (removed.has(member._item!) ? moved : held).add(member.get('id'));
    });
    const brought = new Set<unknown>();
    for (const member of added) {
      const idWrites = touches.filter(({ write }) => write.top === member.write.top && write.inner === 'id' && write.path === 'member-field' && write.content === 'value');
      const id = idWrites.at(-1)?.write.values[0];
      const field = `${collection.entity}.id`;
      if (id === undefined) problems.push({ ...member, field, violation: 'a member needs an id' });
      else if (brought.has(id) || (held.has(id) && !moved.has(id) && !removesAgain())) problems.push({ ...member, field, violation: `id ${JSON.stringify(id)} is taken` });
      brought.add(id);
    }
  }
  return problems;
}

// --- field permissions --------------------------------------------------------

const roleRank: Record<Role, number> = { viewer: 0, commenter: 1, editor: 2, admin: 3 };

function permissionRefusal(touches: Touch[], { policy, actor }: RuleContext): ConcordError | null {
  const denied = touches.filter((touch) => {
    const least = policy[touch.field];
    return least !== undefined && roleRank[actor.role] < roleRank[least];
  });
  if (denied.length === 0) return null;
  const needs = [...new Set(denied.map((touch) => `${touch.field} (${policy[touch.field]})`))].join(', ');
  return refusal('field-not-allowed', `role ${actor.role} may not write ${needs}: the tenant's field permissions reserve them`, denied);
}

// --- locks ----------------------------------------------------------------------

function lockRefusal(touches: Touch[], { locks, actor, now }: RuleContext): ConcordError | null {
  const others = new Map(locks.filter((lock) => lock.userId !== actor.userId && Date.parse(lock.until) > now).map((lock) => [lock.target, lock]));
  if (others.size === 0) return null;
  const blocked = touches.filter((touch) => touch.target !== null && others.has(touch.target));
  if (blocked.length === 0) return null;
  const lock = others.get(blocked[0]!.target!)!;
  const holder = { userId: lock.userId, name: lock.name };
  return refusal('locked', `${lock.target} is locked by ${lock.name ?? lock.userId} until ${lock.until}`, blocked, { target: lock.target, holder });
}
