import type { Principal } from '../auth/tokens.ts';
import type { FieldChangeFilter, FieldTouch } from '../db/field-changes.ts';
import { kindOf } from '../documents/kinds.ts';
import type { DocumentName } from '../documents/name.ts';
import { renderDocument, type DocumentJson, type DocumentService } from '../documents/service.ts';
import type { Metrics } from '../metrics.ts';
import type { PostgresHistory } from '../storage/postgres-history.ts';
import { convergeTo } from './converge.ts';
import type { Version, Versions } from './versions.ts';

/** One page of a listing: `next` is the cursor for the following page (`after=`), null on the last. */
export interface Page {
  limit: number;
  after: number;
}

export interface VersionJson extends DocumentJson {
  latest: number;
  exactFrom: number;
  receivedAt: string | null;
  userId: string | null;
  origin: string | null;
}

/**
 * What admins read and do with a document's past (docs/history.md): its
 * updates, its audit rows, any version in its JSON form, and restoring one.
 */
export class HistoryService {
  private readonly stored: PostgresHistory;
  private readonly versions: Versions;
  private readonly documents: DocumentService;
  private readonly metrics: Metrics;

  constructor(stored: PostgresHistory, versions: Versions, documents: DocumentService, metrics: Metrics) {
    this.stored = stored;
    this.versions = versions;
    this.documents = documents;
    this.metrics = metrics;
  }

  /** The documents of the caller's tenant (those its token's `docs` names, if it has that limit), by name. */
  async documentList(principal: Principal, page: { after: string; limit: number }) {
    const only = principal.docs?.map((doc) => `${principal.tenant}/${doc}`);
    const rows = await this.stored.documents(principal.tenant, page.after, page.limit + 1, only);
    const documents = rows.slice(0, page.limit).map((row) => ({ name: row.name, kind: row.kind, id: row.doc_id, version: row.version, updatedAt: row.updated_at.toISOString() }));
    return { documents, next: rows.length > page.limit ? documents.at(-1)!.name : null };
  }

  /** The updates after `page.after`, in order: who, when, how, how many bytes, and the fields their audit rows name. */
  async history(document: DocumentName, page: Page) {
    const bounds = await this.versions.bounds(document);
    const { updates, touched, exactCheckpoints } = await this.stored.updatePage(document, page.after, page.limit + 1, page.limit, bounds.exactFrom);
    const shown = updates.slice(0, page.limit);
    return {
      name: document.name,
      version: bounds.latest,
      exactFrom: bounds.exactFrom,
      exactCheckpoints,
      updates: shown.map((update) => ({
        seq: update.seq,
        receivedAt: update.received_at.toISOString(),
        userId: update.user_id,
        origin: update.origin,
        attribution: update.attribution,
        bytes: update.bytes,
        fields: fieldsOf(update.seq, update.user_id, touched),
      })),
      next: updates.length > page.limit ? shown.at(-1)!.seq : null,
    };
  }

  /** Audit rows matching `filter`, in the order they were written. */
  async changes(document: DocumentName, filter: FieldChangeFilter, page: Page) {
    await this.versions.bounds(document);
    const rows = await this.stored.fieldChanges(document, filter, page.after, page.limit + 1);
    const changes = rows.slice(0, page.limit).map((row) => ({
      id: row.id,
      seq: row.seq,
      firstSeq: row.first_seq,
      entity: row.entity,
      entityId: row.entity_id,
      field: row.field,
      action: row.action,
      oldValue: row.old_value,
      newValue: row.new_value,
      userId: row.user_id,
      attribution: row.attribution,
      changedAt: row.changed_at.toISOString(),
    }));
    return { name: document.name, changes, next: rows.length > page.limit ? changes.at(-1)!.id : null };
  }

  /** The document exactly as it was after update `seq`, in its JSON form, and where it was rebuilt from. */
  async version(document: DocumentName, seq: number): Promise<{ version: VersionJson; from: Version['from'] }> {
    const timer = this.metrics.versionRead.startTimer();
    const read = await readVersion(this.versions, document, seq);
    timer({ from: read.from });
    return read;
  }

  /** The version current at `at`. */
  async versionAt(document: DocumentName, at: Date): Promise<{ version: VersionJson; from: Version['from'] }> {
    return this.version(document, await this.versions.seqAt(document, at));
  }

  /**
   * Makes the live document equal version `seq` with one new update (origin
   * `restore`, the admin as author), audited and projected like any edit and
   * sent live to connected clients. Nothing earlier is lost: the log only grows.
   */
  async restore(principal: Principal, document: DocumentName, seq: number): Promise<DocumentJson & { restoredFrom: number }> {
    const target = await this.versions.read(document, seq);
    try {
      const layout = kindOf(document.kind).layout;
      const restored = await this.documents.edit(principal, document, { origin: 'restore', restoredFrom: seq }, (live) => convergeTo(layout, live, target.doc));
      return { ...restored, restoredFrom: seq };
    } finally {
      target.doc.destroy();
    }
  }
}

/** A version in its JSON form, with the update that made it: what the API and `npm run replay` answer. */
export async function readVersion(versions: Versions, document: DocumentName, seq: number): Promise<{ version: VersionJson; from: Version['from'] }> {
  const version = await versions.read(document, seq);
  try {
    const json = {
      name: document.name,
      version: version.version,
      latest: version.latest,
      exactFrom: version.exactFrom,
      receivedAt: version.update?.receivedAt.toISOString() ?? null,
      userId: version.update?.userId ?? null,
      origin: version.update?.origin ?? null,
      content: renderDocument(document, version.doc),
    };
    return { version: json, from: version.from };
  } finally {
    version.doc.destroy();
  }
}

/**
 * The fields an update changed, from the audit rows made by it: a row of its
 * own seq, or a text burst it typed into (a burst coalesces one user's typing
 * in one field from `first_seq` to `seq`, and names the updates it was made
 * by; a row from before that record covers its author's updates in its span).
 */
function fieldsOf(seq: number, userId: string, touched: FieldTouch[]): Array<{ entity: string; entityId: string | null; field: string }> {
  const fields = new Map<string, { entity: string; entityId: string | null; field: string }>();
  for (const row of touched) {
    const covers = row.covered ? row.covered.includes(seq) : row.seq === seq || (row.first_seq <= seq && seq <= row.seq && row.user_id === userId);
    if (covers) fields.set(`${row.entity}/${row.entity_id}/${row.field}`, { entity: row.entity, entityId: row.entity_id, field: row.field });
  }
  return [...fields.values()];
}
