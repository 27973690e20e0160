import type { Layout, Member, Fields } from './layout.ts';
import type { TableSpec } from '../db/tables.ts';
import type { Json } from '../json.ts';
import type { Workflow } from './workflow.ts';

/**
 * What a header row is made of: a document's header fields, texts and totals.
 * Values, never changed in place (a reader replaces them), so one taken at a
 * transaction still shows that moment when its row is made later.
 */
export interface HeaderView<Totals = unknown> {
  id: string;
  header: Readonly<Fields>;
  texts: Readonly<Record<string, string>>;
  /** The running aggregate over the table collection (quote totals, say). */
  totals: Totals;
}

/** A document as read through its kind's layout (see projection/view.ts). */
export interface DocumentView<Totals = unknown> extends HeaderView<Totals> {
  members(collection: string): Member[];
}

/**
 * Everything Concord knows about one document kind, in one place: its Yjs
 * layout, its JSON form, its aggregate, and the tables it is projected to
 * (a header table, one row per document, and a member table for one
 * collection). A new kind is one module exporting one of these.
 */
export interface DocumentKindModule<Totals = unknown> {
  layout: Layout;
  /** Its statuses: allowed transitions, and the statuses that freeze the content. */
  workflow: Workflow;
  /** The collection whose members get rows in `tables.members`. */
  tableCollection: string;
  tables: { header: TableSpec; members: TableSpec & { parentColumn: string } };
  /**
   * Kept incrementally as table-collection members come and go, so a change
   * costs the same at 10 or 2,000 lines. `add` and `remove` return new totals
   * and leave those given as they were (see HeaderView).
   */
  totals: { empty(): Totals; add(totals: Totals, member: Member): Totals; remove(totals: Totals, member: Member): Totals };
  render(view: DocumentView<Totals>): Json;
  /** The header table row, without `version`, `updated_at`, `updated_by`. */
  headerRow(view: HeaderView<Totals>): Record<string, Json>;
  /** A member table row, without the parent id, `updated_at`, `updated_by`. */
  memberRow(member: Member & { id: string }, position: number): Record<string, Json>;
}
