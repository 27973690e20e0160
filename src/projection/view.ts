import * as Y from 'yjs';
import type { DocumentKindModule, DocumentView } from '../documents/kind.ts';
import type { CollectionLayout, Entity, Fields, Member } from '../documents/layout.ts';
import type { Json } from '../json.ts';
import { fragmentToProseMirror, proseMirrorText } from '../documents/rich-text.ts';

/** Table rows a change produces: the header row and member rows by id (null: the member is gone). */
export interface RowChanges {
  header: Record<string, Json>;
  members: Map<string, Record<string, Json> | null>;
}

/** A stored value that breaks the layout: it reads as null. */
export interface LayoutViolation {
  entity: Entity;
  entityId: string | null;
  field: string;
  value: unknown;
}

/** A member as read, with its position in its collection. */
export interface PlacedMember extends Member {
  position: number;
}

export interface CollectionState {
  array: Y.Array<unknown>;
  layout: CollectionLayout;
  members: Map<Y.Map<unknown>, PlacedMember>;
  order: Y.Map<unknown>[];
}

/**
 * A document's fields as its kind reads them (each value through its layout's
 * schema; a value that breaks it reads as null and is reported), and its table
 * rows: what rendering, PATCH and table rebuilds need. DocumentTracker keeps
 * one up to date transaction by transaction.
 */
export class DocumentReader<Totals = unknown> implements DocumentView<Totals> {
  readonly id: string;
  // Replaced, never changed in place, once read (see HeaderView).
  header: Readonly<Fields> = {};
  texts: Readonly<Record<string, string>> = {};
  totals: Totals;

  protected readonly kind: DocumentKindModule<Totals>;
  protected readonly doc: Y.Doc;
  protected readonly onViolation: (violation: LayoutViolation) => void;
  protected readonly collections = new Map<string, CollectionState>();

  constructor(kind: DocumentKindModule<Totals>, doc: Y.Doc, id: string, onViolation: (violation: LayoutViolation) => void = () => {}) {
    this.kind = kind;
    this.doc = doc;
    this.id = id;
    this.onViolation = onViolation;
    this.totals = kind.totals.empty();
    for (const [key, layout] of Object.entries(kind.layout.collections)) {
      this.collections.set(key, { array: doc.getArray(key), layout, members: new Map(), order: [] });
    }
    this.readAll();
  }

  members(collection: string): Member[] {
    const state = this.collections.get(collection)!;
    return state.order.map((map) => state.members.get(map)!);
  }

  /** The document in its kind's JSON form. */
  render(): Json {
    return this.kind.render(this);
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

  protected memberRow(member: PlacedMember): Record<string, Json> {
    return this.kind.memberRow(member as PlacedMember & { id: string }, member.position);
  }

  protected readHeaderField(field: string, report: boolean): Json {
    const { key, entity, fields } = this.kind.layout.header;
    return this.read(fields[field]!, this.doc.getMap(key).get(field), report ? { entity, entityId: this.id, field } : null);
  }

  /** Reads a member's fields: all of them, or only the touched ones (the rest are kept from `previous`). */
  protected readMember(layout: CollectionLayout, map: Y.Map<unknown>, keys: Set<string> | 'all', previous: Member | undefined, report: boolean): Member {
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

  /** Reads the whole document; what breaks the layout (stored before the rules refused it, say) is reported once here. */
  private readAll(): void {
    const { header, texts } = this.kind.layout;
    this.header = Object.fromEntries(Object.keys(header.fields).map((field) => [field, this.readHeaderField(field, true)]));
    this.texts = Object.fromEntries(texts.map((key) => [key, this.doc.getText(key).toString()]));
    for (const [key, state] of this.collections) {
      state.array.forEach((value) => {
        if (!(value instanceof Y.Map)) {
          if (value !== undefined) this.onViolation({ entity: state.layout.entity, entityId: null, field: key, value: value as Json });
          return;
        }
        const member = { ...this.readMember(state.layout, value, 'all', undefined, true), position: state.order.length };
        state.members.set(value, member);
        state.order.push(value);
        if (key === this.kind.tableCollection) this.totals = this.kind.totals.add(this.totals, member);
      });
    }
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
