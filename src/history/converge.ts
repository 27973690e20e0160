import { isDeepStrictEqual } from 'node:util';
import * as Y from 'yjs';
import type { Layout } from '../documents/layout.ts';

/**
 * Makes the live document read like `target` (a past version of it), through
 * the kind's layout: its header map, text fields and member arrays. Call it
 * inside one transaction: a restore is then one forward update, which every
 * replica merges like any edit and which leaves all earlier history in place.
 *
 * Only what differs is written. Members are matched by `id`: a member kept in
 * the same relative order is changed in place, field by field (so a Tiptap
 * editor bound to a section body stays bound, and the audit shows field
 * changes), and the others are removed or inserted as copies. Text fields are
 * changed between their common prefix and suffix. Roots outside the layout
 * are not part of the document's JSON form and are left alone.
 */
export function convergeTo(layout: Layout, live: Y.Doc, target: Y.Doc): void {
  convergeMap(live.getMap(layout.header.key), target.getMap(layout.header.key));
  for (const key of layout.texts) convergeText(live.getText(key), target.getText(key));
  for (const key of Object.keys(layout.collections)) convergeArray(live.getArray(key), target.getArray(key));
}

/** Changes `live` in place to hold what `target` holds; false if their types differ and `live` must be replaced. */
function convergeInPlace(live: unknown, target: unknown): boolean {
  if (!(live instanceof Y.AbstractType) || live.constructor !== target?.constructor) return false;
  if (live instanceof Y.Map) convergeMap(live, target as Y.Map<unknown>);
  else if (live instanceof Y.Array) convergeArray(live, target as Y.Array<unknown>);
  else if (live.constructor === Y.Text) convergeText(live as Y.Text, target as Y.Text);
  else if (live.constructor === Y.XmlFragment) convergeChildren(live as Y.XmlFragment, target as Y.XmlFragment);
  else return false;
  return true;
}

function convergeMap(live: Y.Map<unknown>, target: Y.Map<unknown>): void {
  for (const key of [...live.keys()]) if (!target.has(key)) live.delete(key);
  for (const [key, value] of target.entries()) {
    const current = live.get(key);
    if (live.has(key) && sameContent(current, value)) continue;
    if (!convergeInPlace(current, value)) live.set(key, copyOf(value));
  }
}

/** Replaces the text between the common prefix and suffix (never inside a surrogate pair); formatting, if any differs, by a full rewrite. */
function convergeText(live: Y.Text, target: Y.Text): void {
  const from = live.toString();
  const to = target.toString();
  if (from !== to) {
    let prefix = 0;
    while (prefix < from.length && prefix < to.length && from[prefix] === to[prefix]) prefix += 1;
    if (prefix > 0 && isHighSurrogate(from.charCodeAt(prefix - 1))) prefix -= 1;
    let suffix = 0;
    while (suffix < from.length - prefix && suffix < to.length - prefix && from[from.length - 1 - suffix] === to[to.length - 1 - suffix]) suffix += 1;
    if (suffix > 0 && isLowSurrogate(from.charCodeAt(from.length - suffix))) suffix -= 1;
    live.delete(prefix, from.length - prefix - suffix);
    live.insert(prefix, to.slice(prefix, to.length - suffix));
  }
  if (!isDeepStrictEqual(live.toDelta(), target.toDelta())) {
    live.delete(0, live.length);
    live.applyDelta(target.toDelta());
  }
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** Rich text (a section body): its children are replaced when they differ; the fragment itself stays, and editors bound to it with it. */
function convergeChildren(live: Y.XmlFragment, target: Y.XmlFragment): void {
  if (sameContent(live, target)) return;
  live.delete(0, live.length);
  // An XmlHook (never made by an editor) is copied like the rest; the typings leave it out.
  live.insert(0, target.toArray().map((child) => child.clone() as Y.XmlElement | Y.XmlText));
}

/**
 * Members with an id found once on both sides are matched; the longest run of
 * them already in the target's order stays, and is changed in place. The rest
 * of the live array goes, and the target's other elements come in as copies.
 */
function convergeArray(live: Y.Array<unknown>, target: Y.Array<unknown>): void {
  const liveItems = live.toArray();
  const targetItems = target.toArray();
  if (sameContent(live, target)) return;
  const targetIndexOf = uniqueIds(targetItems);
  const liveIds = uniqueIds(liveItems);
  const matched = liveItems.map((item) => {
    const id = idOf(item);
    return id !== null && liveIds.has(id) ? (targetIndexOf.get(id) ?? -1) : -1;
  });
  const kept = longestIncreasingRun(matched);

  for (let index = liveItems.length - 1; index >= 0; ) {
    if (kept.has(index)) {
      index -= 1;
      continue;
    }
    let start = index;
    while (start > 0 && !kept.has(start - 1)) start -= 1;
    live.delete(start, index - start + 1);
    index = start - 1;
  }

  const keptByTarget = new Map([...kept].map((liveIndex) => [matched[liveIndex]!, liveItems[liveIndex]]));
  let position = 0;
  let pending: unknown[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    live.insert(position, pending);
    position += pending.length;
    pending = [];
  };
  targetItems.forEach((item, targetIndex) => {
    if (!keptByTarget.has(targetIndex)) {
      pending.push(copyOf(item));
      return;
    }
    flush();
    convergeMap(keptByTarget.get(targetIndex) as Y.Map<unknown>, item as Y.Map<unknown>);
    position += 1;
  });
  flush();
}

function idOf(item: unknown): string | null {
  const id = item instanceof Y.Map ? item.get('id') : undefined;
  return typeof id === 'string' ? id : null;
}

/** Each id that appears exactly once, with its index. */
function uniqueIds(items: unknown[]): Map<string, number> {
  const indexOf = new Map<string, number>();
  const repeated = new Set<string>();
  items.forEach((item, index) => {
    const id = idOf(item);
    if (id === null) return;
    if (indexOf.has(id)) repeated.add(id);
    indexOf.set(id, index);
  });
  for (const id of repeated) indexOf.delete(id);
  return indexOf;
}

/** The positions of a longest strictly increasing subsequence of the non-negative values (patience sorting, n log n). */
function longestIncreasingRun(values: number[]): Set<number> {
  const tails: number[] = [];
  const previous = new Array<number>(values.length).fill(-1);
  values.forEach((value, index) => {
    if (value < 0) return;
    let low = 0;
    let high = tails.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (values[tails[middle]!]! < value) low = middle + 1;
      else high = middle;
    }
    if (low > 0) previous[index] = tails[low - 1]!;
    tails[low] = index;
  });
  const run = new Set<number>();
  for (let index = tails.at(-1) ?? -1; index >= 0; index = previous[index]!) run.add(index);
  return run;
}

function copyOf(value: unknown): unknown {
  return value instanceof Y.AbstractType ? value.clone() : value;
}

function sameContent(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(contentOf(a), contentOf(b));
}

/** A value as plain data, Yjs types included, with their kind, formatting and attribute types kept: what "equal" means here. */
function contentOf(value: unknown): unknown {
  if (!(value instanceof Y.AbstractType)) return value;
  if (value instanceof Y.Map) return { map: Object.fromEntries([...value.entries()].map(([key, inner]) => [key, contentOf(inner)])) };
  if (value instanceof Y.Array) return { array: value.toArray().map(contentOf) };
  if (value instanceof Y.XmlText) return { xmlText: value.toDelta() };
  if (value instanceof Y.Text) return { text: value.toDelta() };
  if (value instanceof Y.XmlElement) return { element: value.nodeName, attributes: value.getAttributes(), children: value.toArray().map(contentOf) };
  if (value instanceof Y.XmlFragment) return { fragment: value.toArray().map(contentOf) };
  return { other: value.constructor.name, json: value.toJSON() };
}
