import * as Y from 'yjs';
import { z } from 'zod';
import { ConcordError } from '../errors.ts';
import type { CollectionLayout, Layout } from './layout.ts';
import type { Json } from '../json.ts';
import { writeParagraphs } from './rich-text.ts';
import { memberId, storableString } from './values.ts';

/**
 * A server-side edit (the body of `PATCH /api/documents/:kind/:id`), for any
 * kind, derived from its layout:
 *   { "<header>": { field: value, ... },          set header fields (null clears a nullable one)
 *     "<text>": "new text",                        replace a text field
 *     "<collection>": { "add": [{ id, ...fields, position? }],
 *                       "update": [{ id, ...fields }],
 *                       "remove": [id, ...] } }
 * A rich-text field is written as plain text through its text field
 * (`sections: { add: [{ id, title, text }] }`), one paragraph per line.
 */
export type Patch = Record<string, unknown>;

interface CollectionPatch {
  add?: Array<Record<string, Json> & { position?: number }>;
  update?: Array<Record<string, Json> & { id: string }>;
  remove?: string[];
}

/**
 * Any JSON value for a field: whether it fits the field is the business
 * rules' call (src/rules/), as for a client's write: 400 `invalid-value`.
 */
const fieldValue = z.json().optional();

function memberSchema(layout: CollectionLayout) {
  const fields: Record<string, z.ZodType> = Object.fromEntries(Object.keys(layout.fields).map((field) => [field, fieldValue]));
  for (const textField of Object.values(layout.richText ?? {})) fields[textField] = storableString.max(1_000_000).optional();
  return z.object(fields).strict();
}

export function patchSchema(layout: Layout): z.ZodType<Patch> {
  const shape: Record<string, z.ZodType> = {
    [layout.header.key]: z
      .object(Object.fromEntries(Object.keys(layout.header.fields).map((field) => [field, fieldValue])))
      .strict()
      .optional(),
  };
  for (const key of layout.texts) shape[key] = storableString.max(1_000_000).optional();
  for (const [key, collection] of Object.entries(layout.collections)) {
    const member = memberSchema(collection);
    shape[key] = z
      .object({
        add: z.array(member.extend({ position: z.number().int().min(0).optional() })).max(10_000).optional(),
        update: z.array(member.extend({ id: memberId })).max(10_000).optional(),
        remove: z.array(memberId).max(10_000).optional(),
      })
      .strict()
      .optional();
  }
  return z
    .object(shape)
    .strict()
    .refine((patch) => Object.values(patch).some((value) => value !== undefined), 'the patch changes nothing');
}

/** Turns a failed parse into one readable message: `lines.add.0.quantity: Too small...; ...`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : 'body'}: ${issue.message}`).join('; ');
}

/**
 * Applies a parsed patch in the caller's transaction. Everything is checked
 * against the document before anything is written, so a bad id changes nothing.
 */
export function applyPatch(layout: Layout, doc: Y.Doc, patch: Patch): void {
  const collections = Object.entries(layout.collections)
    .filter(([key]) => patch[key] !== undefined)
    .map(([key, collection]) => ({ key, collection, array: doc.getArray<unknown>(key), change: patch[key] as CollectionPatch }));
  for (const { key, array, change } of collections) checkIds(key, array, change);

  const header = patch[layout.header.key] as Record<string, Json> | undefined;
  if (header) {
    const map = doc.getMap(layout.header.key);
    for (const [field, value] of Object.entries(header)) if (value !== undefined) map.set(field, value);
  }
  for (const key of layout.texts) {
    const text = patch[key];
    if (typeof text !== 'string') continue;
    const ytext = doc.getText(key);
    ytext.delete(0, ytext.length);
    ytext.insert(0, text);
  }
  for (const { collection, array, change } of collections) applyCollection(collection, array, change);
}

function checkIds(key: string, array: Y.Array<unknown>, change: CollectionPatch): void {
  const positions = idPositions(array);
  const bad = (message: string) => new ConcordError('bad-request', `${key}: ${message}; nothing was changed`);
  const touched = new Set<string>();
  for (const id of [...(change.remove ?? []), ...(change.update ?? []).map((member) => member.id)]) {
    if (!positions.has(id)) throw bad(`no member has id "${id}"`);
    if (touched.has(id)) throw bad(`id "${id}" is named twice`);
    touched.add(id);
  }
}

function applyCollection(layout: CollectionLayout, array: Y.Array<unknown>, change: CollectionPatch): void {
  const removed = new Set(change.remove);
  // Right to left, so earlier positions stay valid.
  [...idPositions(array)]
    .filter(([id]) => removed.has(id))
    .map(([, position]) => position)
    .sort((a, b) => b - a)
    .forEach((position) => array.delete(position, 1));
  const members = idPositions(array);
  for (const { id, ...fields } of change.update ?? []) writeFields(layout, array.get(members.get(id)!) as Y.Map<unknown>, fields);
  for (const { position, ...fields } of change.add ?? []) {
    const member = new Y.Map<unknown>();
    array.insert(Math.min(position ?? array.length, array.length), [member]);
    writeFields(layout, member, fields);
  }
}

function writeFields(layout: CollectionLayout, member: Y.Map<unknown>, fields: Record<string, Json | undefined>): void {
  const richTextOf = new Map(Object.entries(layout.richText ?? {}).map(([fragment, textField]) => [textField, fragment]));
  for (const [field, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const fragmentKey = richTextOf.get(field);
    if (fragmentKey === undefined) {
      member.set(field, value);
      continue;
    }
    // Editors stay bound to an existing fragment, so it is emptied rather than replaced.
    const existing = member.get(fragmentKey);
    const fragment = existing instanceof Y.XmlFragment ? existing : new Y.XmlFragment();
    if (fragment === existing) fragment.delete(0, fragment.length);
    else member.set(fragmentKey, fragment);
    writeParagraphs(fragment, value as string);
  }
}

/** The position of each member with an id (the first, should ids repeat). */
function idPositions(array: Y.Array<unknown>): Map<string, number> {
  const positions = new Map<string, number>();
  array.forEach((value, position) => {
    const id = value instanceof Y.Map ? value.get('id') : undefined;
    if (typeof id === 'string' && !positions.has(id)) positions.set(id, position);
  });
  return positions;
}
