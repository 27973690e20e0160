import type { Statement } from './database.ts';

/** Which state of the checkpoint a log read takes: the full one a document loads from, or the compact one a version read starts from. */
export type CheckpointState = 'state' | 'compact_state';

/**
 * The two statements that read a document's log at `atSeq`, or at its
 * version when that is lower: the newest checkpoint at or before that seq
 * (at most one row, `seq` and the chosen state as `state`), then every update
 * after the checkpoint up to it (`seq`, `update`, in order). Each takes the
 * version as it stands when it runs, so they go in one message or transaction
 * after a statement that read or locked the document's row, which Postgres
 * runs each with a snapshot of its own: they see what a commit waited for
 * there had written.
 */
export function logStatements(name: string, checkpointState: CheckpointState, atSeq = Number.MAX_SAFE_INTEGER): [Statement, Statement] {
  // least() ignores a NULL: a document without a row has no checkpoints or updates to read either.
  const upto = 'least($2::bigint, (SELECT version FROM documents WHERE tenant_id = current_tenant() AND name = $1))';
  const checkpointSeq = `(SELECT max(seq) FROM document_checkpoints WHERE tenant_id = current_tenant() AND name = $1 AND seq <= ${upto})`;
  return [
    {
      text: `SELECT seq, ${checkpointState} AS state FROM document_checkpoints WHERE tenant_id = current_tenant() AND name = $1 AND seq = ${checkpointSeq}`,
      params: [name, atSeq],
    },
    {
      text: `SELECT seq, update FROM document_updates
             WHERE tenant_id = current_tenant() AND name = $1 AND seq > coalesce(${checkpointSeq}, 0) AND seq <= ${upto}
             ORDER BY seq`,
      params: [name, atSeq],
    },
  ];
}
