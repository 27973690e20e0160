import type { Sql } from './database.ts';
import { pgJson } from './json.ts';

// A tenant's field permissions (schema/012_field_policies.sql). Every function runs in a tenant transaction.

export interface FieldPolicyRow {
  field: string;
  role: string;
}

export async function fieldPolicyRows(sql: Sql): Promise<FieldPolicyRow[]> {
  const { rows } = await sql.query<FieldPolicyRow>('SELECT field, role FROM field_policies WHERE tenant_id = current_tenant() ORDER BY field');
  return rows;
}

/** Holds the tenant's policy until the transaction ends, so two replacements at once end in one of them, not a mix. */
export async function lockFieldPolicy(sql: Sql): Promise<void> {
  await sql.query(`SELECT pg_advisory_xact_lock(hashtext('field_policies'), hashtext(current_tenant()))`);
}

/**
 * Makes the tenant's rows exactly `roles` (field -> role): drops the fields it
 * lacks, and writes the others; a field whose role stays keeps its `updated_at`
 * and `updated_by`.
 */
export async function replaceFieldPolicy(sql: Sql, roles: Readonly<Record<string, string>>, updatedBy: string): Promise<void> {
  await sql.query(
    `WITH wanted AS (SELECT key AS field, value AS role FROM jsonb_each_text($1::jsonb)),
     dropped AS (
       DELETE FROM field_policies p WHERE p.tenant_id = current_tenant() AND NOT EXISTS (SELECT FROM wanted w WHERE w.field = p.field)
     )
     INSERT INTO field_policies (tenant_id, field, role, updated_by) SELECT current_tenant(), field, role, $2 FROM wanted
     ON CONFLICT (tenant_id, field) DO UPDATE SET role = EXCLUDED.role, updated_at = now(), updated_by = EXCLUDED.updated_by
       WHERE field_policies.role <> EXCLUDED.role`,
    [pgJson(roles), updatedBy],
  );
}
