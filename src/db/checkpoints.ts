import type { Sql } from './database.ts';

export interface Checkpoint {
  seq: number;
  state: Uint8Array;
  /** The same version's compact state (src/persistence/compact.ts), for version reads; written with every checkpoint, absent when read for a load. */
  compact?: Uint8Array;
}

/** The newest checkpoint at or before `atOrBeforeSeq`. */
export async function latestCheckpoint(sql: Sql, name: string, atOrBeforeSeq = Number.MAX_SAFE_INTEGER): Promise<Checkpoint | null> {
  const { rows } = await sql.query<Checkpoint>(
    `SELECT seq, state FROM document_checkpoints
     WHERE tenant_id = current_tenant() AND name = $1 AND seq <= $2
     ORDER BY seq DESC LIMIT 1`,
    [name, atOrBeforeSeq],
  );
  return rows[0] ?? null;
}

/** The seq of the newest checkpoint at or before `atOrBeforeSeq`, without reading its state. */
export async function latestCheckpointSeq(sql: Sql, name: string, atOrBeforeSeq: number): Promise<number | null> {
  const { rows } = await sql.query<{ seq: number }>(
    `SELECT seq FROM document_checkpoints
     WHERE tenant_id = current_tenant() AND name = $1 AND seq <= $2
     ORDER BY seq DESC LIMIT 1`,
    [name, atOrBeforeSeq],
  );
  return rows[0] ? Number(rows[0].seq) : null;
}

export async function insertCheckpoint(sql: Sql, name: string, checkpoint: Checkpoint): Promise<void> {
  await sql.query(
    `INSERT INTO document_checkpoints (tenant_id, name, seq, state, compact_state)
     VALUES (current_tenant(), $1, $2, $3, $4)
     ON CONFLICT DO NOTHING`,
    [name, checkpoint.seq, checkpoint.state, checkpoint.compact ?? null],
  );
}

/** The seqs of a document's checkpoints below `belowSeq`, in order. */
export async function checkpointSeqsBelow(sql: Sql, name: string, belowSeq: number): Promise<number[]> {
  const { rows } = await sql.query<{ seq: number }>(
    'SELECT seq FROM document_checkpoints WHERE tenant_id = current_tenant() AND name = $1 AND seq < $2 ORDER BY seq',
    [name, belowSeq],
  );
  return rows.map((row) => Number(row.seq));
}
