import * as Y from 'yjs';
import type { Layout } from '../documents/layout.ts';

/**
 * When each clock of one client came and went: the version that created each
 * run of clocks (starts ascending, as a client's clocks are integrated in
 * order) and the version that deleted each deleted range (sorted when read).
 */
class ClientHistory {
  private readonly createdStarts: number[] = [];
  private readonly createdIn: number[] = [];
  private deletedStarts: number[] = [];
  private deletedEnds: number[] = [];
  private deletedIn: number[] = [];
  private sorted = true;

  created(from: number, version: number): void {
    this.createdStarts.push(from);
    this.createdIn.push(version);
  }

  deleted(from: number, to: number, version: number): void {
    this.deletedStarts.push(from);
    this.deletedEnds.push(to);
    this.deletedIn.push(version);
    this.sorted = false;
  }

  /** Calls `run` for each stretch of clocks [from, to) created in one version and deleted in one (Infinity: never). */
  lifetimes(from: number, to: number, run: (offset: number, length: number, createdIn: number, deletedIn: number) => void): void {
    this.sortDeletions();
    let at = from;
    while (at < to) {
      const c = lastAtOrBefore(this.createdStarts, at);
      let end = Math.min(to, this.createdStarts[c + 1] ?? Number.POSITIVE_INFINITY);
      const createdIn = c >= 0 ? this.createdIn[c]! : Number.POSITIVE_INFINITY;
      let deletedIn = Number.POSITIVE_INFINITY;
      const d = lastAtOrBefore(this.deletedStarts, at);
      if (d >= 0 && this.deletedEnds[d]! > at) {
        deletedIn = this.deletedIn[d]!;
        end = Math.min(end, this.deletedEnds[d]!);
      } else if (d + 1 < this.deletedStarts.length) {
        end = Math.min(end, this.deletedStarts[d + 1]!);
      }
      run(at - from, end - at, createdIn, deletedIn);
      at = end;
    }
  }

  private sortDeletions(): void {
    if (this.sorted) return;
    const order = this.deletedStarts.map((_, index) => index).sort((a, b) => this.deletedStarts[a]! - this.deletedStarts[b]!);
    this.deletedStarts = order.map((index) => this.deletedStarts[index]!);
    this.deletedEnds = order.map((index) => this.deletedEnds[index]!);
    this.deletedIn = order.map((index) => this.deletedIn[index]!);
    this.sorted = true;
  }
}

/** The index of the last of the ascending `starts` that is <= `value` (-1 if none). */
function lastAtOrBefore(starts: number[], value: number): number {
  let low = 0;
  let high = starts.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (starts[middle]! <= value) low = middle + 1;
    else high = middle;
  }
  return low - 1;
}

/**
 * A list of items (a type's children, or one map key's entries from the
 * newest back) laid out flat for reading: one segment per stretch of an
 * item's content with one lifetime. Reading a version scans these arrays
 * instead of chasing item pointers and looking clocks up every time.
 */
class Segments {
  /** The replica's version when these were laid out: stale once it has moved on (items get split and merged). */
  readonly at: number;
  readonly items: Y.Item[] = [];
  readonly offsets: number[] = [];
  readonly lengths: number[] = [];
  readonly createdIn: number[] = [];
  readonly deletedIn: number[] = [];

  constructor(at: number) {
    this.at = at;
  }

  visible(index: number, seq: number): boolean {
    return this.createdIn[index]! <= seq && this.deletedIn[index]! > seq;
  }
}

/**
 * A document's history held in memory, for reading many versions fast. One
 * Y.Doc without garbage collection holds every item since `base`, deleted or
 * not, and for every clock the version (seq) that created it and the one that
 * deleted it, recorded as the updates are applied in log order. What a client
 * held after update N is then exactly the items created at or before N and
 * not deleted by then, in the order they have now (Yjs never reorders
 * integrated items); a version is copied out of that into a small fresh doc
 * without applying anything. Building it costs one replay of the log;
 * afterwards a version costs a scan of flat arrays, however far back it is
 * (a checkpoint of a long history is mostly tombstones, and applying one
 * costs about as much as that replay: see bench/README.md).
 */
export class HistoryReplica {
  /** The first version it can show: the checkpoint it started from (0: the empty document). */
  readonly base: number;
  private version: number;
  private readonly doc = new Y.Doc({ gc: false });
  private readonly clients = new Map<number, ClientHistory>();
  private readonly lists = new WeakMap<Y.AbstractType<any>, Segments>();
  private readonly keys = new WeakMap<Y.AbstractType<any>, Map<string, Segments>>();

  constructor(base: { seq: number; state: Uint8Array } | null) {
    this.base = base?.seq ?? 0;
    this.version = this.base;
    this.doc.on('afterTransaction', (transaction: Y.Transaction) => this.record(transaction));
    if (base) Y.applyUpdate(this.doc, base.state);
  }

  /** The last version applied. */
  get seq(): number {
    return this.version;
  }

  /** Applies update `seq`, which must be the next one. */
  apply(seq: number, update: Uint8Array): void {
    if (seq !== this.version + 1) throw new Error(`the history replica is at ${this.version} and cannot apply update ${seq}`);
    this.version = seq;
    Y.applyUpdate(this.doc, update);
  }

  /** A fresh document holding, through the kind's layout, exactly what version `seq` held (base <= seq <= this.seq). */
  versionDoc(layout: Layout, seq: number): Y.Doc {
    if (seq < this.base || seq > this.version) throw new Error(`the history replica holds versions ${this.base} to ${this.version}, not ${seq}`);
    const at = new VersionView(this, seq);
    const out = new Y.Doc();
    out.transact(() => {
      at.copyMapInto(this.doc.getMap(layout.header.key), out.getMap(layout.header.key));
      for (const key of layout.texts) at.copyTextInto(this.doc.getText(key), out.getText(key));
      for (const key of Object.keys(layout.collections)) out.getArray(key).insert(0, at.listAt(this.doc.getArray(key)));
    });
    return out;
  }

  /** A type's children, laid out flat. */
  listOf(type: Y.AbstractType<any>): Segments {
    const laidOut = this.lists.get(type);
    if (laidOut?.at === this.version) return laidOut;
    const segments = this.layOut(type._start, (item) => item.right);
    this.lists.set(type, segments);
    return segments;
  }

  /** One map key's entries, newest first, laid out flat. */
  entriesOf(map: Y.AbstractType<any>, key: string): Segments {
    let ofMap = this.keys.get(map);
    if (!ofMap) {
      ofMap = new Map();
      this.keys.set(map, ofMap);
    }
    const laidOut = ofMap.get(key);
    if (laidOut?.at === this.version) return laidOut;
    const segments = this.layOut(map._map.get(key) ?? null, (item) => item.left);
    ofMap.set(key, segments);
    return segments;
  }

  private layOut(first: Y.Item | null, next: (item: Y.Item) => Y.Item | null): Segments {
    const segments = new Segments(this.version);
    for (let item = first; item; item = next(item)) {
      const current = item;
      this.clients.get(item.id.client)?.lifetimes(item.id.clock, item.id.clock + item.length, (offset, length, createdIn, deletedIn) => {
        segments.items.push(current);
        segments.offsets.push(offset);
        segments.lengths.push(length);
        segments.createdIn.push(createdIn);
        segments.deletedIn.push(deletedIn);
      });
    }
    return segments;
  }

  private record(transaction: Y.Transaction): void {
    for (const [client, after] of transaction.afterState) {
      const before = transaction.beforeState.get(client) ?? 0;
      if (after > before) this.historyOf(client).created(before, this.version);
    }
    for (const [client, ranges] of transaction.deleteSet.clients) {
      const history = this.historyOf(client);
      for (const { clock, len } of ranges) history.deleted(clock, clock + len, this.version);
    }
  }

  private historyOf(client: number): ClientHistory {
    let history = this.clients.get(client);
    if (!history) {
      history = new ClientHistory();
      this.clients.set(client, history);
    }
    return history;
  }
}

/** Copies what one version held out of the replica's items. */
class VersionView {
  private readonly replica: HistoryReplica;
  private readonly seq: number;

  constructor(replica: HistoryReplica, seq: number) {
    this.replica = replica;
    this.seq = seq;
  }

  /** A map's entries at this version: for each key, the one entry visible then, if any. */
  copyMapInto(source: Y.AbstractType<any>, target: Y.Map<unknown> | Y.XmlElement | Y.XmlHook): void {
    for (const key of source._map.keys()) {
      const entries = this.replica.entriesOf(source, key);
      for (let index = 0; index < entries.items.length; index++) {
        if (!entries.visible(index, this.seq)) continue;
        // Entries of one key deleted one after the other may have been merged into one item: the visible one is in this stretch.
        const value = this.valueOf(entries.items[index]!, entries.offsets[index]! + entries.lengths[index]! - 1);
        if (target instanceof Y.XmlElement) target.setAttribute(key, value as string);
        else (target as Y.Map<unknown>).set(key, value);
        break;
      }
    }
  }

  /** A list's elements at this version. */
  listAt(source: Y.AbstractType<any>): unknown[] {
    const values: unknown[] = [];
    const list = this.replica.listOf(source);
    for (let index = 0; index < list.items.length; index++) {
      if (!list.visible(index, this.seq) || !list.items[index]!.countable) continue;
      for (let offset = list.offsets[index]!; offset < list.offsets[index]! + list.lengths[index]!; offset++) values.push(this.valueOf(list.items[index]!, offset));
    }
    return values;
  }

  /** Text (and its formatting, as Yjs keeps it: format marks among the characters) at this version, as a delta into `target`. */
  copyTextInto(source: Y.Text, target: Y.Text): void {
    const delta: Array<{ insert: unknown; attributes?: Record<string, unknown> }> = [];
    const attributes = new Map<string, unknown>();
    const insert = (value: unknown) => {
      const current = attributes.size > 0 ? Object.fromEntries(attributes) : undefined;
      const last = delta.at(-1);
      if (typeof value === 'string' && last && typeof last.insert === 'string' && JSON.stringify(last.attributes) === JSON.stringify(current)) last.insert += value;
      else delta.push(current ? { insert: value, attributes: current } : { insert: value });
    };
    const list = this.replica.listOf(source);
    for (let index = 0; index < list.items.length; index++) {
      if (!list.visible(index, this.seq)) continue;
      const item = list.items[index]!;
      const offset = list.offsets[index]!;
      const length = list.lengths[index]!;
      const { content } = item;
      if (content instanceof Y.ContentFormat) {
        if (content.value === null) attributes.delete(content.key);
        else attributes.set(content.key, content.value);
      } else if (content instanceof Y.ContentString) {
        insert(content.str.slice(offset, offset + length));
      } else {
        for (let at = offset; at < offset + length; at++) insert(this.valueOf(item, at));
      }
    }
    if (delta.length > 0) target.applyDelta(delta);
  }

  /** One value of an item's content at this version: a primitive as it is, a nested type copied as it was then. */
  private valueOf(item: Y.Item, index: number): unknown {
    const { content } = item;
    if (content instanceof Y.ContentEmbed) return content.embed;
    if (!(content instanceof Y.ContentType)) return content.getContent()[index];
    const type = content.type;
    if (type instanceof Y.XmlText) {
      const copy = new Y.XmlText();
      this.copyTextInto(type, copy);
      return copy;
    }
    if (type instanceof Y.Text) {
      const copy = new Y.Text();
      this.copyTextInto(type, copy);
      return copy;
    }
    if (type instanceof Y.XmlElement || type instanceof Y.XmlHook) {
      const copy = type instanceof Y.XmlElement ? new Y.XmlElement(type.nodeName) : new Y.XmlHook(type.hookName);
      this.copyMapInto(type, copy);
      if (copy instanceof Y.XmlElement) copy.insert(0, this.listAt(type) as Array<Y.XmlElement | Y.XmlText>);
      return copy;
    }
    if (type instanceof Y.XmlFragment) {
      const copy = new Y.XmlFragment();
      copy.insert(0, this.listAt(type) as Array<Y.XmlElement | Y.XmlText>);
      return copy;
    }
    if (type instanceof Y.Map) {
      const copy = new Y.Map<unknown>();
      this.copyMapInto(type, copy);
      return copy;
    }
    if (type instanceof Y.Array) return Y.Array.from(this.listAt(type) as never[]);
    return null;
  }
}
