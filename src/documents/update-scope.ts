import * as Y from 'yjs';

/**
 * The root types (`quote`, `lines`, `comments`...) an update would change in
 * `doc`, found without applying it: each new item's parent is its own root, an
 * item of the update itself, or an item of the doc (reached through the item's
 * parent id or its neighbours), and each deletion is an item of the doc.
 * Returns null when some item cannot be placed (it depends on content the doc
 * does not have yet).
 */
export function rootsTouched(doc: Y.Doc, update: Uint8Array): Set<string> | null {
  const { structs, ds } = Y.decodeUpdate(update);
  const incoming = new Map<string, Y.Item>();
  for (const struct of structs) if (struct instanceof Y.Item) incoming.set(key(struct.id), struct);
  const roots = new Set<string>();
  // A parent id names the item holding the parent type, a neighbour shares the parent:
  // either way the item lives under the same root as the item the id points to.
  // undefined: the item changes nothing (its anchor was garbage-collected, so Yjs drops it).
  const place = (item: Y.Item, depth = 0): string | null | undefined => {
    const { parent } = item;
    if (typeof parent === 'string') return parent;
    if (parent instanceof Y.AbstractType) return rootOfType(parent);
    const anchor = parent ?? item.origin ?? item.rightOrigin;
    if (!anchor || depth > 10_000) return null;
    if (anchor.clock < Y.getState(doc.store, anchor.client)) {
      const known = Y.getItem(doc.store, anchor);
      return known instanceof Y.Item ? rootOfType(known.parent as Y.AbstractType<any>) : undefined;
    }
    const fresh = findIncoming(incoming, anchor);
    return fresh ? place(fresh, depth + 1) : null;
  };
  for (const struct of structs) {
    if (!(struct instanceof Y.Item)) continue;
    const root = place(struct);
    if (root === null) return null;
    if (root !== undefined) roots.add(root);
  }
  for (const [client, deletes] of ds.clients) {
    const known = doc.store.clients.get(client);
    for (const { clock, len } of deletes) {
      const end = Math.min(clock + len, Y.getState(doc.store, client));
      if (!known || clock >= end) continue;
      for (let index = Y.findIndexSS(known, clock); index < known.length && known[index]!.id.clock < end; index++) {
        const struct = known[index]!;
        if (struct instanceof Y.Item) roots.add(rootOfType(struct.parent as Y.AbstractType<any>));
      }
    }
  }
  return roots;
}

function key(id: Y.ID): string {
  return `${id.client}:${id.clock}`;
}

/** An id can point into the middle of an incoming item (a run of characters): find the item covering it. */
function findIncoming(incoming: Map<string, Y.Item>, id: Y.ID): Y.Item | null {
  const exact = incoming.get(key(id));
  if (exact) return exact;
  for (const item of incoming.values()) {
    if (item.id.client === id.client && item.id.clock <= id.clock && id.clock < item.id.clock + item.length) return item;
  }
  return null;
}

function rootOfType(type: Y.AbstractType<any>): string {
  let current = type;
  while (current._item) current = current._item.parent as Y.AbstractType<any>;
  return Y.findRootTypeKey(current);
}
