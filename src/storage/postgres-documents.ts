import { claimClients, readClientOwners, type ClientClaim, type ClientOwner } from '../db/client-owners.ts';
import { runTogether, type Database, type Sql } from '../db/database.ts';
import { clearTablesStale, documentVersion, ensureDocumentStatement, lockDocuments } from '../db/documents.ts';
import { logStatement, type LogRow } from '../db/log.ts';
import { headerVersionStatement } from '../db/tables.ts';
import { kindOf } from '../documents/kinds.ts';
import type { DocumentName } from '../documents/name.ts';
import { repairTables, replaceTables, writeRelayedRows } from '../projection/tables.ts';
import type { RowChanges } from '../projection/view.ts';
import { logFrom, readLog } from './postgres.ts';
import type { LoadedLog } from './storage.ts';

/**
 * What Postgres keeps of a document besides its log, read and written beside
 * it: its tables, who writes under which clientID, and the recovery of
 * content no instance logged. Postgres-only, so not part of `Storage`; each
 * method is one transaction of the document's tenant.
 */
export class PostgresDocuments {
  private readonly db: Database;

  constructor(db: Database) {
    this.db = db;
  }

  /** Opens the document (creating its row) and loads its log, saying whether its tables lag it (marked stale, or of another version). */
  loadForServing(document: DocumentName): Promise<LoadedLog & { tablesBehind: boolean }> {
    return this.db.single(document.tenant, async (sql) => {
      const [opened, header, log] = (await runTogether(sql, [
        ensureDocumentStatement(document),
        headerVersionStatement(kindOf(document.kind).tables.header, document.id),
        logStatement(document.name, 'state'),
      ])) as [{ rows: Array<{ version: number | string; tables_stale: boolean }> }, { rows: Array<{ version: number | string }> }, { rows: LogRow[] }];
      // The log is read after the row is locked: at its version, which cannot move until this ends.
      const loaded = logFrom(document.name, log.rows)!;
      const headerRow = header.rows[0];
      return { ...loaded, tablesBehind: opened.rows[0]!.tables_stale || Number(headerRow?.version) !== loaded.version };
    });
  }

  /** Makes the tables equal `rows` at `version`, under the document's row lock, unless an update was logged since (its writer wrote newer rows). */
  rebuildTables(document: DocumentName, rows: RowChanges, version: number): Promise<void> {
    return this.db.transaction(document.tenant, async (sql) => {
      await lockDocuments(sql, [document.name]);
      if ((await documentVersion(sql, document.name)) !== version) return;
      await replaceTables(sql, document, rows, version);
      await clearTablesStale(sql, document.name);
    });
  }

  /**
   * Under the document's row lock, writes the rows `read` gives, read then:
   * never older than a row another write already landed. False, writing
   * nothing, when `read` gives null (not now).
   */
  writeRelayedRows(document: DocumentName, read: () => RowChanges | null): Promise<boolean> {
    return this.db.transaction(document.tenant, async (sql) => {
      await lockDocuments(sql, [document.name]);
      const rows = read();
      if (!rows) return false;
      await writeRelayedRows(sql, document, rows, (await documentVersion(sql, document.name)) ?? 0);
      return true;
    });
  }

  /**
   * Under the document's row lock, compares the stored rows with those `read`
   * gives for the document's version, and rewrites the ones out of step
   * (which it returns). Null, comparing nothing, when `read` gives null.
   */
  repairTables(document: DocumentName, read: (version: number) => RowChanges | null): Promise<{ version: number; header: boolean; members: string[] } | null> {
    return this.db.transaction(document.tenant, async (sql) => {
      await lockDocuments(sql, [document.name]);
      const version = (await documentVersion(sql, document.name)) ?? 0;
      const rows = read(version);
      return rows && { version, ...(await repairTables(sql, document, rows, version)) };
    });
  }

  /** The owners of the document's clientIDs. */
  clientOwners(document: DocumentName): Promise<Map<number, ClientOwner>> {
    return this.db.single(document.tenant, (sql) => readClientOwners(sql, document.name));
  }

  /** Claims clientIDs of the tenant's documents; each one's owner (the first claimant's), keyed by `claimKey`. Safe to repeat. */
  claimClients(tenant: string, claims: ClientClaim[]): Promise<Map<string, ClientOwner>> {
    return this.db.single(tenant, (sql) => claimClients(sql, claims));
  }

  /**
   * Runs `work` under the document's row lock with its log as it stands (a
   * commit still in flight is waited for): the recovery of relayed content no
   * instance logged (DocumentStore.logUnlogged) appends what the log lacks,
   * with its audit and table rows, in this one transaction.
   */
  underLock<T>(document: DocumentName, work: (sql: Sql, logged: LoadedLog) => Promise<T>): Promise<T> {
    return this.db.transaction(document.tenant, async (sql) => {
      await lockDocuments(sql, [document.name]);
      return work(sql, (await readLog(sql, document.name, 'state')) ?? { version: 0, checkpoint: null, tail: [] });
    });
  }
}
