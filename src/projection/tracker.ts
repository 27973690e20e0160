import * as Y from 'yjs';
import type { DocumentKindModule, DocumentView } from '../documents/kind.ts';
import type { CollectionLayout, Entity, Fields, Json, Member } from '../documents/layout.ts';
import { fragmentToProseMirror, proseMirrorText } from '../documents/rich-text.ts';

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

/** Table rows a change produces: the header row and member rows by id (null: the member is gone). */
export interface RowChanges {
  header: Record<string, Json>;
  members: Map<string, Record<string, Json> | null>;
}

export interface DocumentChanges {
  fieldChanges: FieldChange[];
  rows: RowChanges;
}

/** A stored value that breaks the layout: it reads as null. */
export interface LayoutViolation {
  entity: Entity;
  entityId: string | null;
  field: string;
  value: unknown;
}

interface Tracked extends Member {
  position: number;
}

interface CollectionState {
  array: Y.Array<unknown>;
  layout: CollectionLayout;
  members: Map<Y.Map<unknown>, Tracked>;
  order: Y.Map<unknown>[];
}

/** What a transaction touched: header keys, text keys, and collection members with the keys touched inside them. */
interface Touched {
  header: Set<string>;
  texts: Set<string>;
  members: Map<string, Map<Y.Item, Set<string> | 'all'>>;
}

/**
 * Keeps a document's fields as its kind reads them, and turns each Yjs
 * transaction into field changes and table rows. A transaction is read through
 * the items it added and deleted (never a whole-array or whole-text delta), and
 * only the entities those items belong to are read again, so editing a field or
 * appending a line costs the same in a 10-line and a 2,000-line quote (removing
 * a line or inserting one mid-array renumbers the positions after it). Deleted
 * members' last fields come from the kept copy: a deleted Y.Map reads as empty.
 */
export class DocumentTracker<Totals = unknown> implements DocumentView<Totals> {
  readonly id: string;
  header: Fields = {};
  texts: Record<string, string> = {};
  totals: Totals;

  private readonly kind: DocumentKindModule<Totals>;
  private readonly doc: Y.Doc;
  private readonly onViolation: (violation: LayoutViolation) => void;
  private readonly roots = new Map<Y.AbstractType<any>, string>();
  private readonly collections = new Map<string, CollectionState>();

  constructor(kind: DocumentKindModule<Totals>, doc: Y.Doc, id: string, onViolation: (violation: LayoutViolation) => void = () => {}) {
    this.kind = kind;
    this.doc = doc;
    this.id = id;
    this.onViolation = onViolation;
    this.totals = kind.totals.empty();
    const { header, texts, collections } = kind.layout;
    // Defining the root types up front makes each key read as its layout type.
    this.roots.set(doc.getMap(header.key), header.key);
    for (const key of texts) this.roots.set(doc.getText(key), key);
    for (const [key, layout] of Object.entries(collections)) {
      const array = doc.getArray(key);
      this.roots.set(array, key);
      this.collections.set(key, { array, layout, members: new Map(), order: [] });
    }
    this.readAll();
  }

  members(collection: string): Member[] {
    const state = this.collections.get(collection)!;
    return state.order.map((map) => state.members.get(map)!);
  }

  /** Reads what `transaction` changed; call it from the doc's `afterTransaction`, before deleted content is collected. */
  observe(transaction: Y.Transaction): DocumentChanges {
    const changes = this.follow(transaction);
    changes.rows.header = this.kind.headerRow(this);
    return changes;
  }

  /** Keeps up with a transaction that is not logged (a relayed update, say): the same reading, without the header row. */
  follow(transaction: Y.Transaction): DocumentChanges {
    const touched = this.collectTouched(transaction);
    const changes: DocumentChanges = { fieldChanges: [], rows: { header: {}, members: new Map() } };
    this.observeHeader(touched.header, changes);
    this.observeTexts(touched.texts, changes);
    for (const [key, items] of touched.members) this.observeCollection(this.collections.get(key)!, key, items, transaction, changes);
    return changes;
  }

  /**
   * The header row and the current rows of the members with `ids` (null: no
   * such member now); of every member when `ids` is not given.
   */
  rows(ids?: ReadonlySet<string>): RowChanges {
    const members = new Map<string, Record<string, Json> | null>();
    for (const id of ids ?? []) members.set(id, null);
    const state = this.collections.get(this.kind.tableCollection)!;
    for (const map of state.order) {
      const member = state.members.get(map)!;
      // The first of members sharing an id has the row.
      if (member.id === null || (ids && !ids.has(member.id)) || members.get(member.id)) continue;
      members.set(member.id, this.memberRow(member));
    }
    return { header: this.kind.headerRow(this), members };
  }

  private readAll(): void {
    const { header, texts } = this.kind.layout;
    for (const field of Object.keys(header.fields)) this.header[field] = this.readHeaderField(field, false);
    for (const key of texts) this.texts[key] = this.doc.getText(key).toString();
    for (const [key, state] of this.collections) {
      state.array.forEach((value) => {
        if (!(value instanceof Y.Map)) return;
        const member = { ...this.readMember(state.layout, value, 'all', undefined, false), position: state.order.length };
        state.members.set(value, member);
        state.order.push(value);
        if (key === this.kind.tableCollection) this.kind.totals.add(this.totals, member);
      });
    }
  }

  private collectTouched(transaction: Y.Transaction): Touched {
    const touched: Touched = { header: new Set(), texts: new Set(), members: new Map() };
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
      touched.texts.add(key);
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
      this.header[field] = newValue;
      if (!same(oldValue, newValue)) changes.fieldChanges.push({ entity, entityId: this.id, field, action: 'update', oldValue, newValue, text: false });
    }
  }

  private observeTexts(keys: Set<string>, changes: DocumentChanges): void {
    for (const field of keys) {
      const oldValue = this.texts[field] ?? '';
      const newValue = this.doc.getText(field).toString();
      this.texts[field] = newValue;
      if (oldValue !== newValue) {
        changes.fieldChanges.push({ entity: this.kind.layout.header.entity, entityId: this.id, field, action: 'update', oldValue, newValue, text: true });
      }
    }
  }

  private observeCollection(state: CollectionState, key: string, items: Map<Y.Item, Set<string> | 'all'>, transaction: Y.Transaction, changes: DocumentChanges): void {
    const { entity } = state.layout;
    const tabled = key === this.kind.tableCollection;
    const changedRows = new Set<Tracked>();
    const createdItems: Y.Item[] = [];
    let removed = false;
    for (const [item, keys] of items) {
      const created = item.id.clock >= (transaction.beforeState.get(item.id.client) ?? 0);
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
      const next: Tracked = { ...this.readMember(state.layout, map, previous ? keys : 'all', previous, true), position: previous?.position ?? -1 };
      if (previous && previous.id === next.id) {
        if (!this.diffMember(state.layout, previous, next, changes)) continue;
        if (tabled) this.kind.totals.remove(this.totals, previous);
      } else {
        // A member whose id changed is, to the audit and the tables, one gone and one new.
        if (previous) this.removeMember(state, map, previous, tabled, changes, changedRows);
        changes.fieldChanges.push({ entity, entityId: next.id, field: '*', action: 'create', oldValue: null, newValue: next.fields, text: false });
      }
      state.members.set(map, next);
      if (tabled) this.kind.totals.add(this.totals, next);
      changedRows.add(next);
    }
    if (removed || (createdItems.length > 0 && !this.append(state, createdItems, changedRows))) this.reorder(state, changedRows);
    if (!tabled) return;
    for (const member of changedRows) if (member.id !== null) changes.rows.members.set(member.id, this.memberRow(member));
  }

  private removeMember(state: CollectionState, map: Y.Map<unknown>, member: Tracked, tabled: boolean, changes: DocumentChanges, changedRows: Set<Tracked>): void {
    state.members.delete(map);
    changes.fieldChanges.push({ entity: state.layout.entity, entityId: member.id, field: '*', action: 'delete', oldValue: member.fields, newValue: null, text: false });
    if (!tabled) return;
    this.kind.totals.remove(this.totals, member);
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
  private append(state: CollectionState, createdItems: Y.Item[], changedRows: Set<Tracked>): boolean {
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
  private reorder(state: CollectionState, changedRows: Set<Tracked>): void {
    state.order = state.array.toArray().filter((value): value is Y.Map<unknown> => value instanceof Y.Map && state.members.has(value));
    state.order.forEach((map, position) => {
      const member = state.members.get(map)!;
      if (member.position === position) return;
      member.position = position;
      changedRows.add(member);
    });
  }

  private memberRow(member: Tracked): Record<string, Json> {
    return this.kind.memberRow(member as Tracked & { id: string }, member.position);
  }

  private readHeaderField(field: string, report: boolean): Json {
    const { key, entity, fields } = this.kind.layout.header;
    return this.read(fields[field]!, this.doc.getMap(key).get(field), report ? { entity, entityId: this.id, field } : null);
  }

  /** Reads a member's fields: all of them, or only the touched ones (the rest are kept from `previous`). */
  private readMember(layout: CollectionLayout, map: Y.Map<unknown>, keys: Set<string> | 'all', previous: Member | undefined, report: boolean): Member {
    const fields: Fields = { ...previous?.fields };
    const id = this.read(layout.fields.id!, map.get('id'), null);
    const entityId = typeof id === 'string' ? id : null;
    const touched = (field: string) => keys === 'all' || keys.has(field);
    for (const [field, schema] of Object.entries(layout.fields)) {
      if (touched(field)) fields[field] = this.read(schema, map.get(field), report ? { entity: layout.entity, entityId, field } : null);
    }
    for (const [field, textField] of Object.entries(layout.richText ?? {})) {
      if (!touched(field)) continue;
      const raw = map.get(field);
      const body = raw instanceof Y.XmlFragment ? fragmentToProseMirror(raw) : null;
      if (body) {
        fields[field] = body as unknown as Json;
        fields[textField] = proseMirrorText(body);
      } else {
        fields[field] = raw === undefined ? emptyDocument() : null;
        fields[textField] = raw === undefined ? '' : null;
        if (raw !== undefined && report) this.onViolation({ entity: layout.entity, entityId, field, value: raw });
      }
    }
    return { id: entityId, fields };
  }

  private read(schema: { safeParse(value: unknown): { success: boolean; data?: unknown } }, raw: unknown, violation: Omit<LayoutViolation, 'value'> | null): Json {
    const result = schema.safeParse(raw);
    if (result.success) return result.data as Json;
    if (raw !== undefined && violation) this.onViolation({ ...violation, value: raw });
    return null;
  }
}

function emptyDocument(): Json {
  return { type: 'doc', content: [] };
}

function same(a: Json, b: Json): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}
