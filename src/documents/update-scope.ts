import * as Y from 'yjs';
import { ConcordError } from '../errors.ts';

/**
 * One thing an update would do to a document, placed in the layout:
 * - `member`: an item directly in a root type (a new or removed comment, line,
 *   section; or a header field when the root is a map),
 * - `member-field`: a key of a map directly in a root array (a comment's
 *   `resolved`), in a member the update itself creates or one the doc has,
 * - `other`: anything deeper, or text.
 */
export interface Write {
  root: string;
  path: 'member' | 'member-field' | 'other';
  memberIsNew: boolean;
  key: string | null;
  deletion: boolean;
  /** The value written, for a plain value. */
  value?: unknown;
}

/** Where an item's parent is: a root by name, a type of the doc, a type the update creates, or nowhere. */
type Parent = { root: string } | { type: Y.AbstractType<any> } | { incoming: Y.Item } | 'dropped' | 'unknown';

/** An item's parent and its key in it (a map's key; null in an array). */
interface Placed {
  parent: Parent;
  key: string | null;
}

/**
 * What an update would change in `doc`, found without applying it. Returns
 * null when that cannot be known without applying it: the update depends on
 * content the doc does not have (Yjs would hold it pending and apply it later,
 * inside someone else's transaction), deletes content the doc does not have,
 * or overlaps what the doc holds (Yjs would re-anchor it after that client's
 * last item, wherever that is; a provider never sends that).
 *
 * Content the doc already holds and deletions of what is already deleted change
 * nothing and are skipped (a provider's sync message resends its whole delete
 * set). Each item's parent is found once (memoised): the cost is linear.
 */
export function describeWrites(doc: Y.Doc, update: Uint8Array): Write[] | null {
  let decoded: ReturnType<typeof Y.decodeUpdate>;
  try {
    decoded = Y.decodeUpdate(update);
  } catch (error) {
    throw new ConcordError('bad-update', 'the update is not a valid Yjs update; it was not applied', { cause: error });
  }
  const incoming = new IncomingItems(decoded.structs);
  const parents = new Map<Y.Item, Placed>();
  const writes: Write[] = [];

  for (const [client, items] of incoming.byClient) {
    const state = Y.getState(doc.store, client);
    if (items[0]!.id.clock > state) return null;
    for (const item of items) {
      if (item.id.clock + item.length <= state) continue;
      if (item.id.clock < state) return null;
      const placed = parentOf(doc, incoming, parents, item);
      if (placed.parent === 'unknown') return null;
      if (placed.parent === 'dropped') continue;
      const write = placeWrite(doc, incoming, parents, placed.parent, placed.key);
      if (!write) return null;
      writes.push({ ...write, value: item.content instanceof Y.ContentAny ? item.content.getContent()[0] : undefined });
    }
  }
  for (const [client, deletes] of decoded.ds.clients) {
    const state = Y.getState(doc.store, client);
    const structs = doc.store.clients.get(client);
    for (const { clock, len } of deletes) {
      const end = clock + len;
      if (end > state && !incoming.covers(client, Math.max(clock, state), end)) return null;
      if (!structs || clock >= state) continue;
      for (let index = Y.findIndexSS(structs, clock); index < structs.length && structs[index]!.id.clock < Math.min(end, state); index++) {
        const struct = structs[index]!;
        if (struct instanceof Y.Item && !struct.deleted) writes.push(placeInType(struct.parent as Y.AbstractType<any>, struct.parentSub, true));
      }
    }
  }
  return writes;
}

function placeWrite(doc: Y.Doc, incoming: IncomingItems, parents: Map<Y.Item, Placed>, parent: Exclude<Parent, string>, key: string | null): Write | null {
  if ('root' in parent) return { root: parent.root, path: 'member', memberIsNew: true, key, deletion: false };
  if ('type' in parent) return placeInType(parent.type, key, false);
  // The parent is a type this update creates: where is that type's own item?
  const holder = parentOf(doc, incoming, parents, parent.incoming);
  if (holder.parent === 'unknown' || holder.parent === 'dropped') return null;
  const held = placeWrite(doc, incoming, parents, holder.parent, holder.key);
  if (!held) return null;
  return { root: held.root, path: held.path === 'member' ? 'member-field' : 'other', memberIsNew: true, key, deletion: false };
}

/** An item added to (or deleted from) a type of the doc; a member added to a root is new. */
function placeInType(type: Y.AbstractType<any>, key: string | null, deletion: boolean): Write {
  const root = rootOfType(type);
  if (!type._item) return { root, path: 'member', memberIsNew: !deletion, key, deletion };
  const memberOfRoot = !(type._item.parent as Y.AbstractType<any>)._item;
  return { root, path: memberOfRoot ? 'member-field' : 'other', memberIsNew: false, key, deletion };
}

/** The update's own items, by client in clock order, found by binary search. */
class IncomingItems {
  readonly byClient = new Map<number, Y.Item[]>();

  constructor(structs: Array<Y.Item | Y.GC | Y.Skip>) {
    for (const struct of structs) {
      if (!(struct instanceof Y.Item)) continue;
      const items = this.byClient.get(struct.id.client) ?? [];
      items.push(struct);
      this.byClient.set(struct.id.client, items);
    }
    for (const items of this.byClient.values()) items.sort((a, b) => a.id.clock - b.id.clock);
  }

  find(id: Y.ID): Y.Item | null {
    const items = this.byClient.get(id.client);
    if (!items) return null;
    let low = 0;
    let high = items.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const item = items[middle]!;
      if (id.clock < item.id.clock) high = middle - 1;
      else if (id.clock >= item.id.clock + item.length) low = middle + 1;
      else return item;
    }
    return null;
  }

  /** Whether the update's items cover every clock in [from, to). */
  covers(client: number, from: number, to: number): boolean {
    for (let clock = from; clock < to; ) {
      const item = this.find(Y.createID(client, clock));
      if (!item) return false;
      clock = item.id.clock + item.length;
    }
    return true;
  }
}

/**
 * An item's parent and key, as Yjs would find them: named (a root), by id (the
 * item holding the parent type), or through a neighbour, which shares both (an
 * encoded item with a neighbour carries neither). Neighbours in the update are
 * followed until one is known; every item on the way gets the same answer.
 */
function parentOf(doc: Y.Doc, incoming: IncomingItems, parents: Map<Y.Item, Placed>, start: Y.Item): Placed {
  const chain: Y.Item[] = [];
  let item: Y.Item | null = start;
  let found: Placed = { parent: 'unknown', key: null };
  while (item) {
    const known = parents.get(item);
    if (known !== undefined) {
      found = known;
      break;
    }
    if (chain.includes(item)) break;
    chain.push(item);
    const { parent } = item;
    if (typeof parent === 'string') {
      found = { parent: { root: parent }, key: item.parentSub };
      break;
    }
    if (parent instanceof Y.ID) {
      found = { parent: holderOf(doc, incoming, parent), key: item.parentSub };
      break;
    }
    const neighbour = item.origin ?? item.rightOrigin;
    if (!neighbour) break;
    if (neighbour.clock < Y.getState(doc.store, neighbour.client)) {
      const struct = Y.getItem(doc.store, neighbour);
      found = struct instanceof Y.Item ? { parent: { type: struct.parent as Y.AbstractType<any> }, key: struct.parentSub } : { parent: 'dropped', key: null };
      break;
    }
    item = incoming.find(neighbour);
  }
  for (const onChain of chain) parents.set(onChain, found);
  return found;
}

/** The type held by the item with this id. */
function holderOf(doc: Y.Doc, incoming: IncomingItems, id: Y.ID): Parent {
  if (id.clock >= Y.getState(doc.store, id.client)) {
    const fresh = incoming.find(id);
    return fresh ? { incoming: fresh } : 'unknown';
  }
  const struct = Y.getItem(doc.store, id);
  if (!(struct instanceof Y.Item)) return 'dropped';
  return struct.content instanceof Y.ContentType ? { type: struct.content.type } : 'dropped';
}

function rootOfType(type: Y.AbstractType<any>): string {
  let current = type;
  while (current._item) current = current._item.parent as Y.AbstractType<any>;
  return Y.findRootTypeKey(current);
}
