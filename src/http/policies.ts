import { Hono, type Context } from 'hono';
import { ConcordError } from '../errors.ts';
import { fieldPolicySchema, type FieldPolicies } from '../rules/field-policies.ts';
import { parsed, type ApiEnv } from './api.ts';
import { jsonBody, jsonBodyLimit } from './documents.ts';

// Far above a policy naming every field of every kind.
const BODY_LIMIT = 16 * 1024;

/**
 * `/api/policies` (admin only, docs/field-permissions.md): the tenant's field
 * permissions, read and replaced whole. GET answers what the rule check
 * enforces on this instance: the same cached policy, not a fresh read.
 */
export function policyRoutes(policies: FieldPolicies): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();

  routes.get('/fields', async (c) => c.json(await policies.of(admin(c))));

  routes.put('/fields', jsonBodyLimit(BODY_LIMIT), async (c) => {
    const tenant = admin(c);
    const policy = parsed(fieldPolicySchema, await jsonBody(c.req), 'the body');
    return c.json(await policies.replace(tenant, policy, c.get('principal').userId));
  });

  return routes;
}

/** The caller's tenant, once the caller is its admin. */
function admin(c: Context<ApiEnv>): string {
  const principal = c.get('principal');
  if (principal.role !== 'admin') throw new ConcordError('not-allowed', `role "${principal.role}" may not read or set field permissions (admin only)`);
  return principal.tenant;
}
