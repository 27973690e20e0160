import { runTogether, type Sql } from './database.ts';
import type { UpdateOrigin } from './updates.ts';

/** Who writes under a clientID: a user, through their connections (`client`) or through the server (`api`, `restore`). */
export interface ClientOwner {
  userId: string;
  origin: UpdateOrigin;
}

export interface ClientClaim extends ClientOwner {
  name: string;
  client: number;
}

interface OwnerRow {
  name: string;
  client_id: string | number;
  user_id: string;
  origin: UpdateOrigin;
}

/** The owners of a document's clientIDs (all of them, or those in `clients`). */
export async function readClientOwners(sql: Sql, name: string, clients?: number[]): Promise<Map<number, ClientOwner>> {
  const { rows } = await sql.query<OwnerRow>(
    `SELECT name, client_id, user_id, origin FROM document_clients
     WHERE tenant_id = current_tenant() AND name = $1 AND ($2::bigint[] IS NULL OR client_id = ANY($2::bigint[]))`,
    [name, clients ?? null],
  );
  return new Map(rows.map((row) => [Number(row.client_id), { userId: row.user_id, origin: row.origin }]));
}

/**
 * Claims clientIDs nobody owns yet and returns every claimed clientID's owner
 * (the claimer, or whoever held it first), keyed `name/client`. The primary
 * key decides between rival claims: an insert racing another transaction's
 * waits for it and then does nothing. The owners are read by a second
 * statement, whose snapshot sees such a rival's committed row.
 */
export async function claimClients(sql: Sql, claims: ClientClaim[]): Promise<Map<string, ClientOwner>> {
  if (claims.length === 0) return new Map();
  const columns = [claims.map((claim) => claim.name), claims.map((claim) => claim.client), claims.map((claim) => claim.userId), claims.map((claim) => claim.origin)];
  const [, read] = await runTogether(sql, [
    {
      text: `INSERT INTO document_clients (tenant_id, name, client_id, user_id, origin)
       SELECT current_tenant(), c.name, c.client_id, c.user_id, c.origin
       FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS c(name, client_id, user_id, origin)
       ON CONFLICT (tenant_id, name, client_id) DO NOTHING`,
      params: columns,
    },
    {
      text: `SELECT d.name, d.client_id, d.user_id, d.origin
       FROM document_clients d JOIN unnest($1::text[], $2::bigint[]) AS c(name, client_id) USING (name, client_id)
       WHERE d.tenant_id = current_tenant()`,
      params: columns.slice(0, 2),
    },
  ]);
  return new Map((read!.rows as unknown as OwnerRow[]).map((row) => [claimKey(row.name, Number(row.client_id)), { userId: row.user_id, origin: row.origin }]));
}

export function claimKey(name: string, client: number): string {
  return `${name}/${client}`;
}
