import * as Y from 'yjs';
import type { DocumentKindModule, HeaderView } from '../documents/kind.ts';
import type { CollectionLayout, Entity, Member } from '../documents/layout.ts';
import type { Json } from '../json.ts';
import { DocumentReader, type CollectionState, type LayoutViolation, type PlacedMember, type RowChanges } from './view.ts';

/** One audit row before it has a seq, an author and a time. */
export interface FieldChange {
  entity: Entity;
  entityId: string | null;
  field: string;
  action: 'create' | 'update' | 'delete';
  oldValue: Json;
  newValue: Json;
  /** A text field: its changes are coalesced per burst of typing. */
  text: boolean;
}

export interface DocumentChanges {
  fieldChanges: FieldChange[];
  rows: RowChanges;
}

/** What a transaction touched: header keys, texts with the items touched in them, and collection members with the keys touched inside them. */
interface Touched {
  header: Set<string>;
  texts: Map<string, Set<Y.Item>>;
  members: Map<string, Map<Y.Item, Set<string> | 'all'>>;
}

/**
 * Keeps a document's fields as its kind reads them (a DocumentReader kept up
 * to date), and turns each Yjs transaction into field changes and table rows.
 * A transaction is read through the items it added and deleted (never a
 * whole-array or whole-text delta), and only the entities those items belong
 * to are read again, so editing a field or appending a line costs the same in
 * a 10-line and a 2,000-line quote (removing a line or inserting one
 * mid-array renumbers the positions after it). Deleted members' last fields
 * come from the kept copy: a deleted Y.Map reads as empty.
 */
export class DocumentTracker<Totals = unknown> extends DocumentReader<Totals> {
  /** Each root type of the layout, by its key: where a transaction's items are located. */
  private readonly roots = new Map<Y.AbstractType<any>, string>();

  constructor(kind: DocumentKindModule<Totals>, doc: Y.Doc, id: string, onViolation?: (violation: LayoutViolation) => void) {
    super(kind, doc, id, onViolation);
    const { header, texts } = kind.layout;
    this.roots.set(doc.getMap(header.key), header.key);
    for (const key of texts) this.roots.set(doc.getText(key), key);
    for (const [key, state] of this.collections) this.roots.set(state.array, key);
  }

  /**
   * Reads what `transaction` changed; call it from the doc's `afterTransaction`,
   * before deleted content is collected. Its header row is made when first
   * read, from the header, texts and totals as the transaction left them: most
   * commits write the row from the document as it is then instead.
   */
  observe(transaction: Y.Transaction): DocumentChanges {
    const { fieldChanges, rows } = this.follow(transaction);
    return { fieldChanges, rows: new AppliedRows(rows.members, this.kind, { id: this.id, header: this.header, texts: this.texts, totals: this.totals }) };
  }

  /** Keeps up with a transaction that is not logged (a relayed update, say): the same reading, without the header row. */
  follow(transaction: Y.Transaction): DocumentChanges {
    const touched = this.collectTouched(transaction);
    const changes: DocumentChanges = { fieldChanges: [], rows: { header: {}, members: new Map() } };
    this.observeHeader(touched.header, changes);
    this.observeTexts(touched.texts, transaction, changes);
    for (const [key, items] of touched.members) this.observeCollection(this.collections.get(key)!, key, items, transaction, changes);
    return changes;
  }

  private collectTouched(transaction: Y.Transaction): Touched {
    const touched: Touched = { header: new Set(), texts: new Map(), members: new Map() };
    const { store } = this.doc;
    for (const [client, after] of transaction.afterState) {
      const before = transaction.beforeState.get(client) ?? 0;
      if (after > before) this.visitRange(store.clients.get(client)!, before, after, touched);
    }
    for (const [client, deletes] of transaction.deleteSet.clients) {
      const structs = store.clients.get(client);
      if (structs) for (const { clock, len } of deletes) this.visitRange(structs, clock, clock + len, touched);
    }
    return touched;
  }

  private visitRange(structs: Array<Y.Item | Y.GC>, from: number, to: number, touched: Touched): void {
    for (let index = Y.findIndexSS(structs, from); index < structs.length && structs[index]!.id.clock < to; index++) {
      const struct = structs[index]!;
      if (struct instanceof Y.Item) this.locate(struct, touched);
    }
  }

  /** Finds the entity an item belongs to: walk up to the root, remembering the top two items. */
  private locate(item: Y.Item, touched: Touched): void {
    let top = item;
    let inner: Y.Item | null = null;
    while ((top.parent as Y.AbstractType<any>)._item) {
      inner = top;
      top = (top.parent as Y.AbstractType<any>)._item!;
    }
    const key = this.roots.get(top.parent as Y.AbstractType<any>);
    if (key === undefined) return;
    if (key === this.kind.layout.header.key) {
      if (top.parentSub) touched.header.add(top.parentSub);
    } else if (this.kind.layout.texts.includes(key)) {
      // The text's own item: for a change inside an embed, the embed's.
      touched.texts.set(key, (touched.texts.get(key) ?? new Set()).add(top));
    } else {
      const items = touched.members.get(key) ?? new Map<Y.Item, Set<string> | 'all'>();
      touched.members.set(key, items);
      const keys = items.get(top);
      if (inner === null) items.set(top, 'all');
      else if (keys !== 'all') items.set(top, (keys ?? new Set()).add(inner.parentSub ?? ''));
    }
  }

  private observeHeader(fields: Set<string>, changes: DocumentChanges): void {
    const { entity, fields: layout } = this.kind.layout.header;
    for (const field of fields) {
      if (!(field in layout)) continue;
      const oldValue = this.header[field] ?? null;
      const newValue = this.readHeaderField(field, true);
      if (same(oldValue, newValue)) continue;
      this.header = { ...this.header, [field]: newValue };
      changes.fieldChanges.push({ entity, entityId: this.id, field, action: 'update', oldValue, newValue, text: false });
    }
  }

  private observeTexts(texts: Map<string, Set<Y.Item>>, transaction: Y.Transaction, changes: DocumentChanges): void {
    for (const [field, items] of texts) {
      const oldValue = this.texts[field] ?? '';
      const text = this.doc.getText(field);
      const newValue = appendedText(oldValue, items, transaction, text.length) ?? text.toString();
      if (oldValue === newValue) continue;
      this.texts = { ...this.texts, [field]: newValue };
      changes.fieldChanges.push({ entity: this.kind.layout.header.entity, entityId: this.id, field, action: 'update', oldValue, newValue, text: true });
    }
  }

  private observeCollection(state: CollectionState, key: string, items: Map<Y.Item, Set<string> | 'all'>, transaction: Y.Transaction, changes: DocumentChanges): void {
    const { entity } = state.layout;
    const tabled = key === this.kind.tableCollection;
    const changedRows = new Set<PlacedMember>();
    const createdItems: Y.Item[] = [];
    let removed = false;
    for (const [item, keys] of items) {
      const created = addedIn(transaction, item);
      if (created) createdItems.push(item);
      const map = item.content instanceof Y.ContentType ? item.content.type : null;
      if (!(map instanceof Y.Map)) {
        if (created && !item.deleted) this.onViolation({ entity, entityId: null, field: key, value: item.content.getContent()[0] });
        continue;
      }
      const previous = state.members.get(map);
      if (item.deleted) {
        if (previous) this.removeMember(state, map, previous, tabled, changes, changedRows);
        removed ||= previous !== undefined;
        continue;
      }
      const next: PlacedMember = { ...this.readMember(state.layout, map, previous ? keys : 'all', previous, true), position: previous?.position ?? -1 };
      if (previous && previous.id === next.id) {
        if (!this.diffMember(state.layout, previous, next, changes)) continue;
        if (tabled) this.totals = this.kind.totals.remove(this.totals, previous);
      } else {
        // A member whose id changed is, to the audit and the tables, one gone and one new.
        if (previous) this.removeMember(state, map, previous, tabled, changes, changedRows);
        changes.fieldChanges.push({ entity, entityId: next.id, field: '*', action: 'create', oldValue: null, newValue: next.fields, text: false });
      }
      state.members.set(map, next);
      if (tabled) this.totals = this.kind.totals.add(this.totals, next);
      changedRows.add(next);
    }
    if (removed || (createdItems.length > 0 && !this.append(state, createdItems, changedRows))) this.reorder(state, changedRows);
    if (!tabled) return;
    for (const member of changedRows) if (member.id !== null) changes.rows.members.set(member.id, this.memberRow(member));
  }

  private removeMember(state: CollectionState, map: Y.Map<unknown>, member: PlacedMember, tabled: boolean, changes: DocumentChanges, changedRows: Set<PlacedMember>): void {
    state.members.delete(map);
    changes.fieldChanges.push({ entity: state.layout.entity, entityId: member.id, field: '*', action: 'delete', oldValue: member.fields, newValue: null, text: false });
    if (!tabled) return;
    this.totals = this.kind.totals.remove(this.totals, member);
    if (member.id === null) return;
    changes.rows.members.set(member.id, null);
    // Ids should be unique; if another member has this one, the row is now that member's.
    const survivor = [...state.members.values()].find((other) => other.id === member.id);
    if (survivor) changedRows.add(survivor);
  }

  /** Adds an update change per field that differs; rich text compares the document, reports the plain text. */
  private diffMember(layout: CollectionLayout, previous: Member, next: Member, changes: DocumentChanges): boolean {
    let changed = false;
    const record = (field: string, oldValue: Json, newValue: Json, text: boolean) => {
      changes.fieldChanges.push({ entity: layout.entity, entityId: next.id, field, action: 'update', oldValue, newValue, text });
      changed = true;
    };
    for (const field of Object.keys(layout.fields)) {
      if (!same(previous.fields[field]!, next.fields[field]!)) record(field, previous.fields[field]!, next.fields[field]!, false);
    }
    for (const [field, textField] of Object.entries(layout.richText ?? {})) {
      if (!same(previous.fields[field]!, next.fields[field]!)) record(field, previous.fields[textField]!, next.fields[textField]!, true);
    }
    return changed;
  }

  /**
   * Members added at the end (the usual way to add a line) take the next
   * positions without reading the array; returns false when the new items are
   * not all at the end.
   */
  private append(state: CollectionState, createdItems: Y.Item[], changedRows: Set<PlacedMember>): boolean {
    const created = new Set(createdItems);
    const atEnd = new Set<Y.Item>();
    for (const item of createdItems) {
      const path: Y.Item[] = [item];
      for (let right = item.right; right && !atEnd.has(right); right = right.right) {
        if (!right.deleted && !created.has(right)) return false;
        path.push(right);
      }
      for (const onPath of path) atEnd.add(onPath);
    }
    const first = createdItems.find((item) => {
      let left = item.left;
      while (left && left.deleted && !created.has(left)) left = left.left;
      return !left || !created.has(left);
    })!;
    for (let item: Y.Item | null = first; item; item = item.right) {
      const map = item.content instanceof Y.ContentType ? item.content.type : null;
      const member = map instanceof Y.Map && !item.deleted ? state.members.get(map) : undefined;
      if (!member) continue;
      member.position = state.order.length;
      state.order.push(map as Y.Map<unknown>);
      changedRows.add(member);
    }
    return true;
  }

  /** After members came or went anywhere: their positions, and the rows whose position moved. */
  private reorder(state: CollectionState, changedRows: Set<PlacedMember>): void {
    state.order = state.array.toArray().filter((value): value is Y.Map<unknown> => value instanceof Y.Map && state.members.has(value));
    state.order.forEach((map, position) => {
      const member = state.members.get(map)!;
      if (member.position === position) return;
      member.position = position;
      changedRows.add(member);
    });
  }

}

/**
 * An observed transaction's rows: the members it touched, and its header row,
 * made from the header, texts and totals as the transaction left them when
 * first read. A class, not an object with a getter: one object per update
 * waiting for its commit, not three and two closures.
 */
class AppliedRows<Totals> implements RowChanges {
  readonly members: RowChanges['members'];
  private readonly kind: DocumentKindModule<Totals>;
  private readonly applied: HeaderView<Totals>;
  private made: Record<string, Json> | undefined;

  constructor(members: RowChanges['members'], kind: DocumentKindModule<Totals>, applied: HeaderView<Totals>) {
    this.members = members;
    this.kind = kind;
    this.applied = applied;
  }

  get header(): Record<string, Json> {
    return (this.made ??= this.kind.headerRow(this.applied));
  }
}

/**
 * A text's new value when the transaction only typed at its end (the usual
 * way to type), without reading it whole: `Y.Text#toString` walks every item,
 * which made each keystroke cost as much as the text is long. `items`: those
 * of the text the transaction added or deleted; `length`: the text's length
 * now. Undefined for any other change (an insertion elsewhere, a deletion,
 * formatting, an embed), or when the result would not have that length (the
 * kept text missed a transaction that failed to be read): the caller reads
 * the text.
 */
function appendedText(text: string, items: Set<Y.Item>, transaction: Y.Transaction, length: number): string | undefined {
  for (const item of items) {
    if (!addedIn(transaction, item) || item.deleted || !(item.content instanceof Y.ContentString)) return undefined;
  }
  // The first added item: left from any of them, across added and deleted ones.
  let first = items.values().next().value!;
  for (let left = first.left; left && (items.has(left) || left.deleted); left = left.left) if (items.has(left)) first = left;
  let appended = '';
  let count = 0;
  for (let item: Y.Item | null = first; item; item = item.right) {
    if (items.has(item)) {
      appended += (item.content as Y.ContentString).str;
      count++;
    } else if (!item.deleted) {
      return undefined; // text the transaction did not add follows: it typed in the middle
    }
  }
  return count === items.size && text.length + appended.length === length ? text + appended : undefined;
}

/** Whether `transaction` created `item` (rather than deleted or changed an older one). */
function addedIn(transaction: Y.Transaction, item: Y.Item): boolean {
  return item.id.clock >= (transaction.beforeState.get(item.id.client) ?? 0);
}

function same(a: Json, b: Json): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}
