import { runTogether, type Sql, type Statement } from './database.ts';
import type { DocumentName } from '../documents/name.ts';

export type UpdateOrigin = 'client' | 'api' | 'restore';

/**
 * How an update's author is known: the connection or API caller it arrived
 * from (`sender`), the owner of the clientIDs its content carries
 * (`client-owner`: recovered content), or not at all (`unknown`, user id '').
 */
export type Attribution = 'sender' | 'client-owner' | 'unknown';

export interface NewUpdate {
  document: DocumentName;
  update: Uint8Array;
  userId: string;
  origin: UpdateOrigin;
  /** When the server received it; a backlog written after an outage keeps its real times. */
  receivedAt: Date;
  /** `sender` when not given. */
  attribution?: Attribution;
  /** For a restore: the version it made the document equal to (its event names it; not a column). */
  restoredFrom?: number;
}

export interface LoggedUpdate {
  seq: number;
  update: Uint8Array;
}

/**
 * Appends updates of one tenant in one statement and returns their seqs, in
 * input order. The seqs come from bumping `documents.version`, which locks the
 * document row until commit: a second writer of the same document (another
 * instance) waits, then continues after our last seq, so seqs never collide
 * and never leave a gap. Rows are locked in name order to avoid deadlocks.
 * Run as a prepared statement where the backend keeps them (every commit runs it).
 */
export async function appendUpdates(sql: Sql, updates: NewUpdate[]): Promise<number[]> {
  const [{ rows }] = (await runTogether(sql, [appendStatement(updates, { returning: true })])) as [{ rows: Array<{ name: string; seq: number }> }];
  const seqsByName = new Map<string, number[]>();
  for (const row of rows) {
    const seqs = seqsByName.get(row.name) ?? [];
    seqs.push(row.seq);
    seqsByName.set(row.name, seqs);
  }
  for (const seqs of seqsByName.values()) seqs.sort((a, b) => a - b);
  return updates.map((u) => seqsByName.get(u.document.name)!.shift()!);
}

/**
 * The same append as statements to send ahead of others, for a caller that
 * predicted the seqs: `lastSeqs` is each document's version once they are
 * logged. Refused (SQLSTATE CV001, schema/014) when a version is not that,
 * because another writer logged the document first; the caller rolls back.
 */
export function appendAsPredicted(updates: NewUpdate[], lastSeqs: Map<string, number>): Statement[] {
  return [appendStatement(updates, { returning: false }), { text: 'SELECT expect_document_versions($1::text[], $2::bigint[])', params: [[...lastSeqs.keys()], [...lastSeqs.values()]] }];
}

/** `returning`: the statement's rows are each update's name and seq (a caller that predicted them needs none sent back). */
function appendStatement(updates: NewUpdate[], { returning }: { returning: boolean }): Statement {
  return {
    text: `WITH batch AS (
       SELECT t.*, row_number() OVER (PARTITION BY t.name ORDER BY t.ord) AS rn,
              count(*) OVER (PARTITION BY t.name) AS n
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::text[])
            WITH ORDINALITY AS t(name, kind, doc_id, update_hex, user_id, origin, received_at, attribution, ord)
     ),
     bumped AS (
       INSERT INTO documents AS d (tenant_id, name, kind, doc_id, version)
       SELECT DISTINCT ON (name) current_tenant(), name, kind, doc_id, n FROM batch ORDER BY name
       ON CONFLICT (tenant_id, name)
         DO UPDATE SET version = d.version + EXCLUDED.version, updated_at = now()
       RETURNING d.name, d.version
     )
     INSERT INTO document_updates (tenant_id, name, seq, update, user_id, origin, received_at, attribution)
     SELECT current_tenant(), b.name, bumped.version - b.n + b.rn, decode(b.update_hex, 'hex'), b.user_id, b.origin, b.received_at, b.attribution
     FROM batch b JOIN bumped ON bumped.name = b.name${returning ? '\n     RETURNING name, seq' : ''}`,
    params: [
      updates.map((u) => u.document.name),
      updates.map((u) => u.document.kind),
      updates.map((u) => u.document.id),
      updates.map((u) => Buffer.from(u.update).toString('hex')),
      updates.map((u) => u.userId),
      updates.map((u) => u.origin),
      updates.map((u) => u.receivedAt.toISOString()),
      updates.map((u) => u.attribution ?? 'sender'),
    ],
  };
}

/** Updates of a document with seq in (afterSeq, uptoSeq], in order. */
export async function readUpdates(sql: Sql, name: string, afterSeq: number, uptoSeq = Number.MAX_SAFE_INTEGER): Promise<LoggedUpdate[]> {
  const { rows } = await sql.query<LoggedUpdate>(
    `SELECT seq, update FROM document_updates
     WHERE tenant_id = current_tenant() AND name = $1 AND seq > $2 AND seq <= $3
     ORDER BY seq`,
    [name, afterSeq, uptoSeq],
  );
  return rows;
}

/**
 * The seq under which this exact update was logged after `afterSeq`, if it was.
 * Settles a commit whose outcome was lost with the connection.
 */
export async function findLoggedUpdate(sql: Sql, name: string, afterSeq: number, update: Uint8Array): Promise<number | null> {
  const { rows } = await sql.query<{ seq: number }>(
    `SELECT seq FROM document_updates
     WHERE tenant_id = current_tenant() AND name = $1 AND seq > $2 AND update = decode($3, 'hex')
     ORDER BY seq LIMIT 1`,
    [name, afterSeq, Buffer.from(update).toString('hex')],
  );
  return rows[0]?.seq ?? null;
}

/** An update as the history lists it: who sent it, when, how, and how large it is. */
export interface UpdateEntry {
  seq: number;
  received_at: Date;
  user_id: string;
  origin: UpdateOrigin;
  attribution: Attribution;
  bytes: number;
}

/** Up to `limit` updates after `afterSeq`, in order, without their content. */
export async function updatePage(sql: Sql, name: string, afterSeq: number, limit: number): Promise<UpdateEntry[]> {
  const { rows } = await sql.query<UpdateEntry>(
    `SELECT seq, received_at, user_id, origin, attribution, octet_length(update) AS bytes FROM document_updates
     WHERE tenant_id = current_tenant() AND name = $1 AND seq > $2
     ORDER BY seq LIMIT $3`,
    [name, afterSeq, limit],
  );
  return rows;
}

/** The seq of the last update received at or before `at` (ties: the higher seq), or null. */
export async function seqReceivedBy(sql: Sql, name: string, at: Date): Promise<number | null> {
  const { rows } = await sql.query<{ seq: number }>(
    `SELECT seq FROM document_updates
     WHERE tenant_id = current_tenant() AND name = $1 AND received_at <= $2
     ORDER BY received_at DESC, seq DESC LIMIT 1`,
    [name, at.toISOString()],
  );
  return rows[0]?.seq ?? null;
}

/**
 * The last seq up to which every update was received before `before`: the
 * end of the prefix that retention may prune (0 when there is none).
 */
export async function seqsReceivedBefore(sql: Sql, name: string, before: Date): Promise<number> {
  const { rows } = await sql.query<{ upto: number }>(
    `SELECT COALESCE(
       (SELECT min(seq) - 1 FROM document_updates WHERE tenant_id = current_tenant() AND name = $1 AND received_at >= $2),
       (SELECT max(seq) FROM document_updates WHERE tenant_id = current_tenant() AND name = $1),
       0) AS upto`,
    [name, before.toISOString()],
  );
  return Number(rows[0]!.upto);
}

// Maintenance, as the owner role (schema/003): across tenants, so the tenant is named.

/** Documents of every tenant that still log an update received before `before`. */
export async function documentsWithUpdatesBefore(sql: Sql, before: Date): Promise<Array<{ tenant_id: string; name: string }>> {
  const { rows } = await sql.query<{ tenant_id: string; name: string }>(
    `SELECT d.tenant_id, d.name FROM documents d
     WHERE EXISTS (SELECT 1 FROM document_updates u WHERE u.tenant_id = d.tenant_id AND u.name = d.name AND u.received_at < $1)
     ORDER BY d.tenant_id, d.name`,
    [before.toISOString()],
  );
  return rows;
}

/**
 * Deletes a document's updates before `seq`, but only if a checkpoint holds
 * the state at `seq` (so the document still loads, every version from `seq`
 * on is still exact, and update `seq` itself stays to say when it came).
 * Returns how many were deleted.
 */
export async function pruneUpdatesBefore(sql: Sql, tenant: string, name: string, seq: number): Promise<number> {
  const { rows } = await sql.query<{ deleted: string }>(
    `WITH pruned AS (
       DELETE FROM document_updates u
       WHERE u.tenant_id = $1 AND u.name = $2 AND u.seq < $3
         AND EXISTS (SELECT 1 FROM document_checkpoints c WHERE c.tenant_id = $1 AND c.name = $2 AND c.seq = $3)
       RETURNING 1
     )
     SELECT count(*) AS deleted FROM pruned`,
    [tenant, name, seq],
  );
  return Number(rows[0]!.deleted);
}
