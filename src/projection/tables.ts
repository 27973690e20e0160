import type { CommitWriter, PreparedWrite, TrackedEntry, UpdateChanges } from '../commit/writer.ts';
import { runTogether, type Sql, type Statement } from '../db/database.ts';
import { deleteMembers, deleteMembersExcept, differingRows, upsertRows, type TableSpec } from '../db/tables.ts';
import type { DocumentName } from '../documents/name.ts';
import type { Json } from '../json.ts';
import { kindOf, kinds } from '../documents/kinds.ts';
import type { RowChanges } from './view.ts';

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
 * Writes the rows of a commit's updates to the kinds' tables, so the tables
 * show the document as of its last committed update (`version`). A commit
 * with many updates of one document writes each row once.
 *
 * The rows' values are read from the document as it is now, not as it was
 * when each update was applied: logging the updates holds the documents' row
 * locks, so every write of a document's rows (this commit, another instance's
 * commit, a relayed-rows write) reads its instance's copy while it is the only
 * writer, and lands in the order it read. Each copy only grows, and every
 * change of a row in it is followed by such a write; so whichever write of a
 * row lands last reads the document every copy converged to. (Values read
 * when an update was applied could land after another instance's newer write
 * of the same row, its concurrent lines having moved it, and stay wrong.)
 *
 * Except while newer updates of the document wait to be committed here: the
 * copy holds them, and the tables must never show what the log lacks (the
 * process could die first). Then the rows are written as of this commit's
 * last update and owed: the commit that empties the queue reads them again.
 */
export class TableWriter implements CommitWriter {
  readonly name = 'tables';
  /** Per document, members whose rows an earlier commit wrote as they were when its updates were applied, with their stamps. */
  private readonly owed = new Map<string, ReadonlyMap<string, Stamp>>();

  prepare(entries: TrackedEntry[]): PreparedWrite {
    const { statements, owed } = tableChanges(entries, this.owed);
    return {
      statements,
      committed: () => {
        for (const [name, members] of owed) {
          if (members) this.owed.set(name, members);
          else this.owed.delete(name);
        }
      },
    };
  }

  forget(names: string[]): void {
    for (const name of names) this.owed.delete(name);
  }
}

/** The statements writing the rows of `entries`, and per document the rows owed after them (see TableWriter). */
function tableChanges(
  entries: TrackedEntry[],
  owed: ReadonlyMap<string, ReadonlyMap<string, Stamp>>,
): { statements: Statement[]; owed: Map<string, ReadonlyMap<string, Stamp> | null> } {
  const byDocument = new Map<string, Touched>();
  for (const { update, seq, changes, newerQueued } of entries) {
    const name = update.document.name;
    const stamp: Stamp = { updated_at: update.receivedAt.toISOString(), updated_by: update.userId };
    const previous = byDocument.get(name);
    const members = previous?.members ?? new Map(owed.get(name));
    const applied = previous?.applied ?? new Map<string, Record<string, Json> | null>();
    // Later updates override earlier ones: a row is stamped by the last update that touched it.
    for (const [id, row] of changes.rows.members) {
      members.set(id, stamp);
      applied.set(id, row && { ...row, ...stamp });
    }
    byDocument.set(name, { document: update.document, version: seq, stamp, members, applied, appliedHeader: () => changes.rows.header, rowsNow: (ids) => changes.rowsNow(ids), newerQueued });
  }
  const owedAfter = new Map<string, ReadonlyMap<string, Stamp> | null>();
  const rows = [...byDocument.values()].map(({ document, version, stamp, members, applied, appliedHeader, rowsNow, newerQueued }): DocumentRows => {
    if (newerQueued()) {
      owedAfter.set(document.name, members);
      return { document, header: { ...appliedHeader(), version, ...stamp }, members: applied };
    }
    owedAfter.set(document.name, null);
    const now = rowsNow(new Set(members.keys()));
    return { document, header: { ...now.header, version, ...stamp }, members: new Map([...now.members].map(([id, row]) => [id, row && { ...row, ...members.get(id)! }])) };
  });
  return { statements: rowStatements(rows), owed: owedAfter };
}

/** What a commit's updates of one document touched: the header (always) and these members, each with its last update's stamp. */
interface Touched {
  document: DocumentName;
  version: number;
  stamp: Stamp;
  members: Map<string, Stamp>;
  /** The rows as they were when the updates were applied (the header: after the last one, made only if asked for). */
  applied: Map<string, Record<string, Json> | null>;
  appliedHeader: () => Record<string, Json>;
  rowsNow: UpdateChanges['rowsNow'];
  newerQueued: () => boolean;
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

// The tables as commits write them, built once per kind: upsertRows keeps each table's statement text.
const writtenTables = new WeakMap<object, { header: TableSpec; members: TableSpec }>();

/** A kind's tables with the stamp columns, the header with its version. */
function tablesWritten(tables: { header: TableSpec; members: TableSpec }): { header: TableSpec; members: TableSpec } {
  let written = writtenTables.get(tables);
  if (!written) writtenTables.set(tables, (written = { header: stamped(versioned(tables.header)), members: stamped(tables.members) }));
  return written;
}

/** One statement per table for all documents of a kind; `keepStamps` leaves existing rows' stamps as they are. */
function rowStatements(documents: DocumentRows[], { keepStamps = false } = {}): Statement[] {
  const keep = keepStamps ? Object.keys(stampColumns) : [];
  return Object.entries(kinds).flatMap(([kind, module]) => {
    const ofKind = documents.filter((rows) => rows.document.kind === kind);
    if (ofKind.length === 0) return [];
    const { members } = module.tables;
    const removed = ofKind.flatMap((rows) => [...rows.members].filter(([, row]) => row === null).map(([id]) => ({ parent: rows.document.id, id })));
    const upserts = ofKind.flatMap((rows) =>
      [...rows.members.values()].filter((row) => row !== null).map((row) => ({ ...row, [members.parentColumn]: rows.document.id })),
    );
    const written = tablesWritten(module.tables);
    return [
      upsertRows(written.header, ofKind.map((rows) => rows.header), keep),
      deleteMembers(members, removed),
      upsertRows(written.members, upserts, keep),
    ].filter((statement) => statement !== null);
  });
}
