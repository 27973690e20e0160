import type { Layout, Member, Fields } from './layout.ts';
import type { TableSpec } from '../db/tables.ts';
import type { Json } from '../json.ts';
import type { Workflow } from './workflow.ts';

/** A document as read through its kind's layout (see projection/view.ts). */
export interface DocumentView<Totals = unknown> {
  id: string;
  header: Fields;
  texts: Record<string, string>;
  members(collection: string): Member[];
  /** The running aggregate over the table collection (quote totals, say). */
  totals: Totals;
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
  /** Kept incrementally as table-collection members come and go, so a change costs the same at 10 or 2,000 lines. */
  totals: { empty(): Totals; add(totals: Totals, member: Member): void; remove(totals: Totals, member: Member): void };
  render(view: DocumentView<Totals>): Json;
  /** The header table row, without `version`, `updated_at`, `updated_by`. */
  headerRow(view: DocumentView<Totals>): Record<string, Json>;
  /** A member table row, without the parent id, `updated_at`, `updated_by`. */
  memberRow(member: Member & { id: string }, position: number): Record<string, Json>;
}
