import * as Y from 'yjs';
import { ConcordError } from '../errors.ts';

/** Where an item lands: a root key, nowhere (Yjs drops it: its anchor was garbage-collected), or unknown. */
type Placement = string | 'dropped' | 'unknown';

/**
 * The root types (`quote`, `lines`, `comments`...) an update would change in
 * `doc`, found without applying it. Returns null when that cannot be known
 * without applying it: the update depends on content the doc does not have
 * (Yjs would hold it pending and apply it later, inside someone else's
 * transaction), or deletes content the doc does not have yet.
 *
 * Content the doc already holds and deletions of what is already deleted change
 * nothing and are skipped (a provider's sync message resends its whole delete
 * set). A struct that overlaps what the doc holds is integrated by Yjs after
 * the doc's last item of that client, so that item's root counts too.
 * Each item is placed once (memoised): the cost is linear in the update.
 */
export function rootsTouched(doc: Y.Doc, update: Uint8Array): Set<string> | null {
  let decoded: ReturnType<typeof Y.decodeUpdate>;
  try {
    decoded = Y.decodeUpdate(update);
  } catch (error) {
    throw new ConcordError('bad-update', 'the update is not a valid Yjs update; it was not applied', { cause: error });
  }
  const incoming = new IncomingItems(decoded.structs);
  const placements = new Map<Y.Item, Placement>();
  const roots = new Set<string>();
  const add = (placement: Placement) => {
    if (placement === 'unknown') return false;
    if (placement !== 'dropped') roots.add(placement);
    return true;
  };

  for (const [client, items] of incoming.byClient) {
    const state = Y.getState(doc.store, client);
    // A gap before the first new struct: Yjs would hold the update pending.
    if (items[0]!.id.clock > state) return null;
    for (const item of items) {
      if (item.id.clock + item.length <= state) continue;
      if (!add(place(doc, incoming, placements, item))) return null;
      if (item.id.clock < state && !add(rootOfKnown(doc, Y.createID(client, state - 1)))) return null;
    }
  }
  for (const [client, deletes] of decoded.ds.clients) {
    const state = Y.getState(doc.store, client);
    const structs = doc.store.clients.get(client);
    for (const { clock, len } of deletes) {
      const end = clock + len;
      // Deleting content that is neither in the doc nor in this update: it would stay pending.
      if (end > state && !incoming.covers(client, Math.max(clock, state), end)) return null;
      if (!structs || clock >= state) continue;
      for (let index = Y.findIndexSS(structs, clock); index < structs.length && structs[index]!.id.clock < Math.min(end, state); index++) {
        const struct = structs[index]!;
        if (struct instanceof Y.Item && !struct.deleted) roots.add(rootOfType(struct.parent as Y.AbstractType<any>));
      }
    }
  }
  return roots;
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
 * Follows an item's parent id or neighbours through the update's items until
 * one is known (a root name, or an item of the doc); every item on the way
 * lands where that one does.
 */
function place(doc: Y.Doc, incoming: IncomingItems, placements: Map<Y.Item, Placement>, start: Y.Item): Placement {
  const chain: Y.Item[] = [];
  let item: Y.Item | null = start;
  let placement: Placement = 'unknown';
  while (item) {
    const known = placements.get(item);
    if (known !== undefined) {
      placement = known;
      break;
    }
    if (chain.includes(item)) break;
    chain.push(item);
    const { parent } = item;
    if (typeof parent === 'string') {
      placement = parent;
      break;
    }
    // A parent id names the item holding the parent type; a neighbour shares the parent.
    const anchor: Y.ID | null = parent instanceof Y.ID ? parent : (item.origin ?? item.rightOrigin);
    if (!anchor) break;
    if (anchor.clock < Y.getState(doc.store, anchor.client)) {
      placement = rootOfKnown(doc, anchor);
      break;
    }
    item = incoming.find(anchor);
  }
  for (const onChain of chain) placements.set(onChain, placement);
  return placement;
}

function rootOfKnown(doc: Y.Doc, id: Y.ID): Placement {
  const struct = Y.getItem(doc.store, id);
  return struct instanceof Y.Item ? rootOfType(struct.parent as Y.AbstractType<any>) : 'dropped';
}

function rootOfType(type: Y.AbstractType<any>): string {
  let current = type;
  while (current._item) current = current._item.parent as Y.AbstractType<any>;
  return Y.findRootTypeKey(current);
}
