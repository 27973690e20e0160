import type { Statement } from './database.ts';

/** Which state of the checkpoint a log read takes: the full one a document loads from, or the compact one a version read starts from. */
export type CheckpointState = 'state' | 'compact_state';

/** A row of logStatement's result. */
export interface LogRow {
  /** 0: the seq the log is read to; 1: the checkpoint; 2: an update. */
  part: number;
  seq: number | string;
  bytes: Uint8Array | null;
}

/**
 * The statement that reads a document's log at `atSeq`, or at its version
 * when that is lower, all with one snapshot (a commit or a checkpoint landing
 * meanwhile is either wholly in it or not at all). Rows in order of `part`:
 * the seq read to (none when the document has no row), the newest checkpoint
 * at or before it with the chosen state (none when there is none), then each
 * update after the checkpoint up to that seq, in order.
 */
export function logStatement(name: string, checkpointState: CheckpointState, atSeq = Number.MAX_SAFE_INTEGER): Statement {
  return {
    text: `WITH upto AS (
             SELECT least($2::bigint, version) AS seq FROM documents WHERE tenant_id = current_tenant() AND name = $1
           ), checkpoint AS (
             SELECT c.seq, c.${checkpointState} AS bytes FROM document_checkpoints c, upto
             WHERE c.tenant_id = current_tenant() AND c.name = $1 AND c.seq <= upto.seq
             ORDER BY c.seq DESC LIMIT 1
           )
           SELECT 0 AS part, seq, NULL::bytea AS bytes FROM upto
           UNION ALL SELECT 1, seq, bytes FROM checkpoint
           UNION ALL SELECT 2, u.seq, u.update FROM document_updates u, upto
             WHERE u.tenant_id = current_tenant() AND u.name = $1
               AND u.seq > coalesce((SELECT seq FROM checkpoint), 0) AND u.seq <= upto.seq
           ORDER BY part, seq`,
    params: [name, atSeq],
  };
}
