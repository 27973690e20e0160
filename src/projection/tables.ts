import { runTogether, type Sql, type Statement } from '../db/database.ts';
import { deleteMembers, deleteMembersExcept, differingRows, upsertRows } from '../db/tables.ts';
import type { DocumentName } from '../documents/name.ts';
import type { TableSpec } from '../documents/kind.ts';
import type { Json } from '../documents/layout.ts';
import { kindOf, kinds } from '../documents/kinds.ts';
import type { Recorded } from './recorder.ts';
import type { RowChanges } from './tracker.ts';

interface Stamp {
  updated_at: string;
  updated_by: string | null;
}

/** One document's rows after a commit: later updates override earlier ones. */
interface DocumentRows {
  document: DocumentName;
  header: Record<string, Json>;
  members: Map<string, Record<string, Json> | null>;
}

/**
 * The statements writing the rows of a commit's updates to the kinds' tables,
 * so the tables show the document as of its last committed update
 * (`version`). A commit with many updates of one document writes each row once.
 *
 * The rows' values are read from the document now, not when each update was
 * applied: logging the updates holds the documents' row locks, so every write
 * of a document's rows (this commit, another instance's commit, a relayed-rows
 * write) reads its instance's copy while it is the only writer, and lands in
 * the order it read. Each instance's copy only grows, and every change of a row
 * in it is followed by such a write; so whichever write of a row lands last
 * reads the document that every copy converged to. Values read when an update
 * was applied could land after a newer write of the same row (another
 * instance's concurrent lines had since moved it) and stay wrong.
 */
export function tableChanges(updates: Array<Required<Recorded>>): Statement[] {
  const byDocument = new Map<string, Touched>();
  for (const { update, seq, changes } of updates) {
    const stamp: Stamp = { updated_at: update.receivedAt.toISOString(), updated_by: update.userId };
    const members = byDocument.get(update.document.name)?.members ?? new Map<string, Stamp>();
    // Later updates override earlier ones: a row is stamped by the last update that touched it.
    for (const id of changes.rows.members.keys()) members.set(id, stamp);
    byDocument.set(update.document.name, { document: update.document, version: seq, stamp, members, rowsNow: changes.rowsNow });
  }
  return rowStatements(
    [...byDocument.values()].map(({ document, version, stamp, members, rowsNow }) => {
      const rows = rowsNow(new Set(members.keys()));
      return {
        document,
        header: { ...rows.header, version, ...stamp },
        members: new Map([...rows.members].map(([id, row]) => [id, row && { ...row, ...members.get(id)! }])),
      };
    }),
  );
}

/** What a commit's updates of one document touched: the header (always) and these members, each with its last update's stamp. */
interface Touched {
  document: DocumentName;
  version: number;
  stamp: Stamp;
  members: Map<string, Stamp>;
  rowsNow: (memberIds: ReadonlySet<string>) => RowChanges;
}

/** Makes a document's tables equal `rows` (all of them) at `version`, removing members it no longer has. */
export async function replaceTables(sql: Sql, document: DocumentName, rows: RowChanges, version: number): Promise<void> {
  await runTogether(sql, rowStatements([unattributed(document, rows, version)]));
  await deleteMembersExcept(sql, kindOf(document.kind).tables.members, document.id, [...rows.members.keys()]);
}

/**
 * Writes rows this instance read from updates another instance logged (relayed
 * through Redis). Their values follow this instance's copy of the document;
 * who changed a row and when stay as the logging instance wrote them.
 */
export async function writeRelayedRows(sql: Sql, document: DocumentName, rows: RowChanges, version: number): Promise<void> {
  await runTogether(sql, rowStatements([unattributed(document, rows, version)], { keepStamps: true }));
}

/**
 * Compares a document's stored rows with `rows` (all of them: the document at
 * `version`) and rewrites those that differ, keeping their stamps; returns the
 * ids of the member rows that differed and whether the header row did.
 */
export async function repairTables(sql: Sql, document: DocumentName, rows: RowChanges, version: number): Promise<{ header: boolean; members: string[] }> {
  const { header, members } = kindOf(document.kind).tables;
  const headerDiffers = (await differingRows(sql, versioned(header), [{ ...rows.header, version }], { column: 'id', value: document.id })).length > 0;
  const stored = [...rows.members.values()].filter((row) => row !== null).map((row) => ({ ...row, [members.parentColumn]: document.id }));
  const memberIds = await differingRows(sql, members, stored, { column: members.parentColumn, value: document.id });
  if (headerDiffers || memberIds.length > 0) {
    await writeRelayedRows(sql, document, { header: rows.header, members: new Map(memberIds.map((id) => [id, rows.members.get(id) ?? null])) }, version);
  }
  return { header: headerDiffers, members: memberIds };
}

/** Rows stamped "now, by nobody": what is known when they are not an update's own. */
function unattributed(document: DocumentName, rows: RowChanges, version: number): DocumentRows {
  const stamp: Stamp = { updated_at: new Date().toISOString(), updated_by: null };
  const members = new Map([...rows.members].map(([id, member]) => [id, member && { ...member, ...stamp }]));
  return { document, header: { ...rows.header, version, ...stamp }, members };
}

const stampColumns = { updated_at: 'timestamptz', updated_by: 'text' };

function stamped<Table extends TableSpec>(table: Table): Table {
  return { ...table, columns: { ...table.columns, ...stampColumns } };
}

/** A header table with the version of the document its row shows. */
function versioned(header: TableSpec): TableSpec {
  return { ...header, columns: { ...header.columns, version: 'bigint' } };
}

/** One statement per table for all documents of a kind; `keepStamps` leaves existing rows' stamps as they are. */
function rowStatements(documents: DocumentRows[], { keepStamps = false } = {}): Statement[] {
  const keep = keepStamps ? Object.keys(stampColumns) : [];
  return Object.entries(kinds).flatMap(([kind, module]) => {
    const ofKind = documents.filter((rows) => rows.document.kind === kind);
    if (ofKind.length === 0) return [];
    const { header, members } = module.tables;
    const removed = ofKind.flatMap((rows) => [...rows.members].filter(([, row]) => row === null).map(([id]) => ({ parent: rows.document.id, id })));
    const upserts = ofKind.flatMap((rows) =>
      [...rows.members.values()].filter((row) => row !== null).map((row) => ({ ...row, [members.parentColumn]: rows.document.id })),
    );
    return [
      upsertRows(stamped(versioned(header)), ofKind.map((rows) => rows.header), keep),
      deleteMembers(members, removed),
      upsertRows(stamped(members), upserts, keep),
    ].filter((statement) => statement !== null);
  });
}
