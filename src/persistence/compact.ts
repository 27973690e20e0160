import * as Y from 'yjs';

/**
 * A checkpoint's compact state: the same version with the values its maps
 * overwrote left out. A quote's quantities and prices are set over and over;
 * each set leaves the value it replaced in the document as a deleted struct,
 * and a long-edited quote is mostly deleted structs (89,000 of the 91,000 of
 * S6's 100,000-update quote; leaving out the replaced values halves them).
 * Yjs must keep them for a live document: a client that has not seen the
 * newer value may still send a set placed after an older one. A version
 * read replays a known tail, though, so it can start from the compact state
 * and check that tail for such references (`applyTailToCompact`);
 * integrating the compact state is about six times faster. Live documents
 * always load the exact state.
 *
 * In the compact encoding each overwritten value is a GC range (an ID range
 * with no content), and each key's current value (or the deletion that
 * removed the key) becomes the first of its key, with no origin.
 */
export function encodeCompact(doc: Y.Doc): Uint8Array {
  const overwritten = new Set<Y.Item>();
  const current: Y.Item[] = [];
  for (const type of doc.share.values()) collectOverwritten(type, overwritten, current);
  const clients = new Map(doc.store.clients);
  const origins = current.map((item) => item.origin);
  // Encoded from the document itself, with its structs and origins swapped
  // for the compact ones meanwhile: no copy of a long history.
  try {
    for (const [client, structs] of clients) doc.store.clients.set(client, withGaps(structs, overwritten));
    for (const item of current) item.origin = null;
    return Y.encodeStateAsUpdate(doc);
  } finally {
    for (const [client, structs] of clients) doc.store.clients.set(client, structs);
    current.forEach((item, index) => (item.origin = origins[index]!));
  }
}

/**
 * Applies `tail` (the updates after the compact state `into` holds) unless
 * one of them may refer to what the compact state leaves out; then nothing
 * more is applied and false is returned, and the caller reads the version
 * from the exact state instead. Refused, conservatively: an item placed next
 * to or inside a GC range (a left-out value, or the content of a deleted
 * type, which the exact state holds as GC too), a map value set without an
 * origin on a key whose values begin in the compact state (its place among
 * them depends on the values left out), and any tail at all when the compact
 * state holds updates still waiting for others (their references were never
 * checked).
 */
export function applyTailToCompact(into: Y.Doc, tail: Iterable<Uint8Array>): boolean {
  if (into.store.pendingStructs || into.store.pendingDs) return false;
  const base = Y.decodeStateVector(Y.encodeStateVector(into));
  for (const update of tail) {
    for (const struct of Y.decodeUpdate(update).structs) {
      if (!(struct instanceof Y.Item)) continue;
      // Decoded, not integrated: its parent is an item's ID or a root type's name.
      const parent = struct.parent as unknown as Y.ID | string | null;
      if (isGap(into, struct.origin) || isGap(into, struct.rightOrigin)) return false;
      if (parent instanceof Y.ID && isGap(into, parent)) return false;
      if (struct.origin === null && struct.parentSub !== null && keyFromBase(into, base, parent, struct.parentSub)) return false;
    }
    Y.applyUpdate(into, update);
  }
  return true;
}

/** Every map value that a later value of its key replaced, in `type` and the types nested in it; and each key's current value. */
function collectOverwritten(type: Y.AbstractType<any>, overwritten: Set<Y.Item>, current: Y.Item[]): void {
  for (const last of type._map.values()) {
    if (last.left) current.push(last);
    for (let item = last.left; item !== null; item = item.left) overwritten.add(item);
    if (!last.deleted && last.content instanceof Y.ContentType) collectOverwritten(last.content.type, overwritten, current);
  }
  for (let item = type._start; item !== null; item = item.right) {
    if (!item.deleted && item.content instanceof Y.ContentType) collectOverwritten(item.content.type, overwritten, current);
  }
}

/** A client's structs with each overwritten value as a GC range, neighbouring ranges joined. */
function withGaps(structs: Array<Y.Item | Y.GC>, overwritten: Set<Y.Item>): Array<Y.Item | Y.GC> {
  const compact: Array<Y.Item | Y.GC> = [];
  for (const struct of structs) {
    const gap = struct instanceof Y.GC || overwritten.has(struct);
    const previous = compact.at(-1);
    if (gap && previous instanceof Y.GC) previous.length += struct.length;
    else compact.push(gap ? new Y.GC(struct.id, struct.length) : struct);
  }
  return compact;
}

/** Whether `id` is in `doc` as a GC range. */
function isGap(doc: Y.Doc, id: Y.ID | null): boolean {
  if (id === null || id.clock >= Y.getState(doc.store, id.client)) return false;
  const structs = doc.store.clients.get(id.client)!;
  return structs[Y.findIndexSS(structs, id.clock)] instanceof Y.GC;
}

/** Whether the values of `key` in the map `parent` (a root type's name or its item's ID) begin in the compact state. */
function keyFromBase(doc: Y.Doc, base: Map<number, number>, parent: Y.ID | string | null, key: string): boolean {
  const type = typeof parent === 'string' ? doc.share.get(parent) : parent ? typeAt(doc, parent) : undefined;
  let first = type?._map.get(key) ?? null;
  while (first?.left) first = first.left;
  return first !== null && first.id.clock < (base.get(first.id.client) ?? 0);
}

function typeAt(doc: Y.Doc, id: Y.ID): Y.AbstractType<any> | undefined {
  if (id.clock >= Y.getState(doc.store, id.client)) return undefined;
  const item = Y.getItem(doc.store, id);
  return item instanceof Y.Item && item.content instanceof Y.ContentType ? item.content.type : undefined;
}
