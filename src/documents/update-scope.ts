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
  /**
   * The item directly in the root that the write is or lies inside (in the
   * doc, or new in the update): a header field's value, a line, a section, a
   * comment, a run of text.
   */
  top: Y.Item;
  /** `top`'s key in a root map (the header field it is); null in a root array or text. */
  topKey: string | null;
  /** The key, directly inside `top`'s type, under which the write lies (a line's `unitPrice`, a section's `body`); null for `top` itself. */
  inner: string | null;
  deletion: boolean;
  /** The client whose clock the item carries (for a deletion, the deleted item's). */
  client: number;
  /**
   * `value`: plain values (all of them in `values`); `map`: a new Y.Map;
   * `fragment`: a new Y.XmlFragment (rich text); `deleted`: content deleted
   * before it was sent (or by the update itself); `other`: any other (text,
   * another type).
   */
  content: 'value' | 'map' | 'fragment' | 'deleted' | 'other';
  values: unknown[];
}

/** Where an item's parent is: a root by name, a type of the doc, a type the update creates, or nowhere. */
type Parent = { root: string } | { type: Y.AbstractType<any> } | { incoming: Y.Item } | 'dropped' | 'unknown';

/** An item's parent and its key in it (a map's key; null in an array). */
interface Placed {
  parent: Parent;
  key: string | null;
}

/** An update's delete set, as Yjs decodes it. */
type DeleteSet = ReturnType<typeof Y.decodeUpdate>['ds'];

type Place = Pick<Write, 'root' | 'path' | 'memberIsNew' | 'key' | 'top' | 'topKey' | 'inner'>;

// Nothing in a layout nests deeper than this; deeper updates are not placed.
const MAX_DEPTH = 32;

/**
 * What an update would change in `doc`, found without applying it; `stop`
 * ends the reading at the first write it returns true for (a refusal needs no
 * more). Returns null when that cannot be known without applying it: a client's
 * structs overlap, leave gaps or are skipped (Yjs keeps only some of them, or
 * holds them pending to apply later inside someone else's transaction), an item
 * depends on content the doc lacks, a struct overlaps what the doc holds, or a
 * deletion reaches content neither the doc nor the update has.
 *
 * Content the doc already holds and deletions of what is already deleted change
 * nothing and are skipped (a provider's sync message resends its whole delete
 * set). Each item is placed once (memoised): the cost is linear in the update.
 */
export function describeWrites(doc: Y.Doc, update: Uint8Array, stop: (write: Write) => boolean = () => false): Write[] | null {
  let decoded: ReturnType<typeof Y.decodeUpdate>;
  try {
    decoded = Y.decodeUpdate(update);
  } catch (error) {
    throw new ConcordError('bad-update', 'the update is not a valid Yjs update; it was not applied', { cause: error });
  }
  const incoming = IncomingStructs.of(decoded.structs, decoded.ds);
  if (!incoming) return null;
  const placer = new Placer(doc, incoming);
  const writes: Write[] = [];
  const push = (write: Write) => {
    writes.push(write);
    return stop(write);
  };

  for (const [client, structs] of incoming.byClient) {
    const state = Y.getState(doc.store, client);
    if (structs[0]!.id.clock > state) return null;
    for (const struct of structs) {
      if (struct.id.clock + struct.length <= state || !(struct instanceof Y.Item)) continue;
      if (struct.id.clock < state) return null;
      const place = placer.place(struct);
      if (place === null) return null;
      if (place === 'dropped') continue;
      const content = incoming.deletesWhole(struct) ? { content: 'deleted' as const, values: [] } : contentOf(struct);
      if (push({ ...place, deletion: false, client, ...content })) return writes;
    }
  }
  for (const [client, ranges] of decoded.ds.clients) {
    const state = Y.getState(doc.store, client);
    const known = doc.store.clients.get(client);
    for (const { clock, len } of mergeRanges(ranges)) {
      const end = clock + len;
      if (end > state && !incoming.covers(client, Math.max(clock, state), end)) return null;
      if (!known || clock >= state) continue;
      for (let index = Y.findIndexSS(known, clock); index < known.length && known[index]!.id.clock < Math.min(end, state); index++) {
        const struct = known[index]!;
        if (!(struct instanceof Y.Item) || struct.deleted) continue;
        const place = placeInType(struct.parent as Y.AbstractType<any>, struct, struct.parentSub, false);
        if (push({ ...place, deletion: true, client, content: 'other', values: [] })) return writes;
      }
    }
  }
  return writes;
}

/**
 * What applying the update would change in `doc` now, content Yjs holds
 * pending that it would release included (so a write cannot slip in behind a
 * dependency sent later). Read directly when the update places on its own and
 * releases nothing pending (almost always); nothing when it waits whole for
 * what it depends on (it is read when an update releases it); else by applying
 * it to a twin of the doc, pending content held the same way, and reading
 * what the twin integrated.
 */
export function describeEffect(doc: Y.Doc, update: Uint8Array): Write[] {
  const direct = describeWrites(doc, update);
  if (direct && !releasesPending(doc, update)) return direct;
  if (!direct && waitsWhole(doc, update)) return [];
  const twin = twinOf(doc);
  try {
    const before = Y.encodeStateVector(doc);
    Y.applyUpdate(twin, update);
    twin.store.pendingStructs = null;
    twin.store.pendingDs = null;
    const integrated = describeWrites(doc, Y.encodeStateAsUpdate(twin, before));
    if (integrated) return integrated;
  } catch (error) {
    throw new ConcordError('bad-update', 'the update could not be read; it was not applied', { cause: error });
  } finally {
    twin.destroy();
  }
  throw new ConcordError('bad-update', 'what the update would change could not be read; it was not applied');
}

/**
 * A doc holding what `doc` integrated, and what it holds pending held the same
 * way: Yjs's encoding of a doc merges the pending content in, and integrating
 * that can release content the doc itself would keep pending (a client that
 * sent two runs for the same clocks, the first waiting for a dependency).
 */
function twinOf(doc: Y.Doc): Y.Doc {
  const { pendingStructs, pendingDs } = doc.store;
  const twin = new Y.Doc({ gc: false });
  try {
    doc.store.pendingStructs = null;
    doc.store.pendingDs = null;
    Y.applyUpdate(twin, Y.encodeStateAsUpdate(doc));
  } finally {
    doc.store.pendingStructs = pendingStructs;
    doc.store.pendingDs = pendingDs;
  }
  twin.store.pendingStructs = pendingStructs && { missing: new Map(pendingStructs.missing), update: pendingStructs.update };
  twin.store.pendingDs = pendingDs;
  return twin;
}

/**
 * Whether applying the update makes Yjs retry what it holds pending: the
 * update brings a clock pending structs wait for, or content pending deletions
 * name, or the doc has it already (Yjs checks after each update; parked content
 * put back for a judged release is released this way).
 */
function releasesPending(doc: Y.Doc, update: Uint8Array): boolean {
  const { pendingStructs, pendingDs } = doc.store;
  if (!pendingStructs && !pendingDs) return false;
  const { from, to } = Y.parseUpdateMeta(update);
  const brings = (client: number, start: number, end: number) =>
    start < Y.getState(doc.store, client) || ((from.get(client) ?? Infinity) < end && start < (to.get(client) ?? -Infinity));
  for (const [client, clock] of pendingStructs?.missing ?? []) if (brings(client, clock, clock + 1)) return true;
  if (!pendingDs) return false;
  for (const [client, ranges] of Y.decodeUpdateV2(pendingDs).ds.clients) if (ranges.some(({ clock, len }) => brings(client, clock, clock + len))) return true;
  return false;
}

/** Whether Yjs would hold the whole update pending: each client's structs start past what the doc has, and it deletes nothing the doc has. */
function waitsWhole(doc: Y.Doc, update: Uint8Array): boolean {
  const { structs, ds } = Y.decodeUpdate(update);
  if (structs.some((struct) => struct.id.clock <= Y.getState(doc.store, struct.id.client))) return false;
  for (const [client, ranges] of ds.clients) if (ranges.some(({ clock }) => clock < Y.getState(doc.store, client))) return false;
  return true;
}

function contentOf(item: Y.Item): Pick<Write, 'content' | 'values'> {
  if (item.content instanceof Y.ContentAny) return { content: 'value', values: item.content.getContent() };
  if (item.content instanceof Y.ContentType && item.content.type instanceof Y.Map) return { content: 'map', values: [] };
  if (item.content instanceof Y.ContentType && item.content.type.constructor === Y.XmlFragment) return { content: 'fragment', values: [] };
  if (item.content instanceof Y.ContentDeleted) return { content: 'deleted', values: [] };
  return { content: 'other', values: [] };
}

function mergeRanges(ranges: Array<{ clock: number; len: number }>): Array<{ clock: number; len: number }> {
  const merged: Array<{ clock: number; len: number }> = [];
  for (const range of ranges.toSorted((a, b) => a.clock - b.clock)) {
    const last = merged.at(-1);
    if (last && range.clock <= last.clock + last.len) last.len = Math.max(last.len, range.clock + range.len - last.clock);
    else merged.push({ clock: range.clock, len: range.len });
  }
  return merged;
}

/** An item added to (or deleted from) a type of the doc; a member added to a root is new. */
function placeInType(type: Y.AbstractType<any>, item: Y.Item, key: string | null, isNew: boolean): Place {
  // The items holding `type`, innermost first: the last is directly in the root.
  const holders: Y.Item[] = [];
  let current = type;
  while (current._item) {
    holders.push(current._item);
    current = current._item.parent as Y.AbstractType<any>;
  }
  const root = Y.findRootTypeKey(current);
  if (holders.length === 0) return { root, path: 'member', memberIsNew: isNew, key, top: item, topKey: key, inner: null };
  const top = holders.at(-1)!;
  const inner = holders.length === 1 ? key : holders.at(-2)!.parentSub;
  return { root, path: holders.length === 1 ? 'member-field' : 'other', memberIsNew: false, key, top, topKey: top.parentSub, inner };
}

/**
 * The update's structs by client, in clock order, refused unless each client's
 * run is contiguous: Yjs keeps only the last run of a client that appears
 * twice, and holds back what follows a gap or a skip, so such an update would
 * do something other than it says.
 */
class IncomingStructs {
  readonly byClient = new Map<number, Array<Y.Item | Y.GC>>();
  private readonly deletes: DeleteSet;

  private constructor(deletes: DeleteSet) {
    this.deletes = deletes;
  }

  static of(structs: Array<Y.Item | Y.GC | Y.Skip>, deletes: DeleteSet): IncomingStructs | null {
    const incoming = new IncomingStructs(deletes);
    for (const struct of structs) {
      if (struct instanceof Y.Skip) return null;
      const run = incoming.byClient.get(struct.id.client) ?? [];
      const last = run.at(-1);
      if (last && struct.id.clock !== last.id.clock + last.length) return null;
      run.push(struct);
      incoming.byClient.set(struct.id.client, run);
    }
    return incoming;
  }

  /** The update's struct holding this clock. */
  find(id: Y.ID): Y.Item | Y.GC | null {
    const run = this.byClient.get(id.client);
    if (!run) return null;
    let low = 0;
    let high = run.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const struct = run[middle]!;
      if (id.clock < struct.id.clock) high = middle - 1;
      else if (id.clock >= struct.id.clock + struct.length) low = middle + 1;
      else return struct;
    }
    return null;
  }

  /** Whether the update's own delete set removes the whole item (a value overwritten before it was sent). */
  deletesWhole(item: Y.Item): boolean {
    const start = item.id.clock;
    const end = start + item.length;
    return (this.deletes.clients.get(item.id.client) ?? []).some((range) => range.clock <= start && end <= range.clock + range.len);
  }

  /** Whether the update's structs cover every clock in [from, to). */
  covers(client: number, from: number, to: number): boolean {
    const run = this.byClient.get(client);
    if (!run) return false;
    const last = run.at(-1)!;
    return run[0]!.id.clock <= from && to <= last.id.clock + last.length;
  }
}

/** Places the update's items, each once. */
class Placer {
  private readonly doc: Y.Doc;
  private readonly incoming: IncomingStructs;
  private readonly parents = new Map<Y.Item, Placed>();
  private readonly holders = new Map<Y.Item, Place | 'dropped' | null>();

  constructor(doc: Y.Doc, incoming: IncomingStructs) {
    this.doc = doc;
    this.incoming = incoming;
  }

  /** Where an incoming item lands; null when that cannot be known, `dropped` when Yjs drops it. */
  place(item: Y.Item, depth = 0): Place | 'dropped' | null {
    if (depth > MAX_DEPTH) return null;
    const { parent, key } = this.parentOf(item);
    if (parent === 'unknown') return null;
    if (parent === 'dropped') return 'dropped';
    if ('root' in parent) return { root: parent.root, path: 'member', memberIsNew: true, key, top: item, topKey: key, inner: null };
    if ('type' in parent) return placeInType(parent.type, item, key, true);
    // The parent is a type this update creates: where does that type's own item land?
    let held = this.holders.get(parent.incoming);
    if (held === undefined) {
      this.holders.set(parent.incoming, null); // a parent cycle ends here, unplaced
      held = this.place(parent.incoming, depth + 1);
      this.holders.set(parent.incoming, held);
    }
    if (held === null || held === 'dropped') return held;
    const direct = held.path === 'member';
    return { root: held.root, path: direct ? 'member-field' : 'other', memberIsNew: true, key, top: held.top, topKey: held.topKey, inner: direct ? key : held.inner };
  }

  /**
   * An item's parent and key, as Yjs finds them: named (a root), by id (the
   * item holding the parent type), or through a neighbour, which shares both
   * (an encoded item with a neighbour carries neither). Neighbours in the
   * update are followed until one is known; every item on the way gets the
   * same answer.
   */
  private parentOf(start: Y.Item): Placed {
    const chain = new Set<Y.Item>();
    let item: Y.Item | null = start;
    let found: Placed = { parent: 'unknown', key: null };
    while (item && !chain.has(item)) {
      const known = this.parents.get(item);
      if (known !== undefined) {
        found = known;
        break;
      }
      chain.add(item);
      const { parent } = item;
      if (typeof parent === 'string') {
        found = { parent: { root: parent }, key: item.parentSub };
        break;
      }
      if (parent instanceof Y.ID) {
        found = { parent: this.holderOf(parent), key: item.parentSub };
        break;
      }
      const neighbour = item.origin ?? item.rightOrigin;
      if (!neighbour) break;
      if (neighbour.clock < Y.getState(this.doc.store, neighbour.client)) {
        const struct = Y.getItem(this.doc.store, neighbour);
        found = struct instanceof Y.Item ? { parent: { type: struct.parent as Y.AbstractType<any> }, key: struct.parentSub } : { parent: 'dropped', key: null };
        break;
      }
      const fresh = this.incoming.find(neighbour);
      if (!(fresh instanceof Y.Item)) {
        found = { parent: fresh ? 'dropped' : 'unknown', key: null };
        break;
      }
      item = fresh;
    }
    for (const onChain of chain) this.parents.set(onChain, found);
    return found;
  }

  /** The type held by the item with this id. */
  private holderOf(id: Y.ID): Parent {
    if (id.clock >= Y.getState(this.doc.store, id.client)) {
      const fresh = this.incoming.find(id);
      if (!fresh) return 'unknown';
      return fresh instanceof Y.Item ? { incoming: fresh } : 'dropped';
    }
    const struct = Y.getItem(this.doc.store, id);
    if (!(struct instanceof Y.Item)) return 'dropped';
    return struct.content instanceof Y.ContentType ? { type: struct.content.type } : 'dropped';
  }
}
