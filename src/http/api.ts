import { Hono, type Context } from 'hono';
import { checkDocumentAccess } from '../auth/access.ts';
import type { Principal, TokenVerifier } from '../auth/tokens.ts';
import { type DocumentName } from '../documents/name.ts';
import { parseDocumentName } from '../documents/kinds.ts';
import { describeIssues } from '../documents/patch.ts';
import { ConcordError } from '../errors.ts';
import type { z } from 'zod';

export type ApiEnv = { Variables: { principal: Principal } };

/**
 * `/api`: every route group behind one bearer-token check, each mounted at its
 * path (`/documents`, `/events`, ...). The tenant always comes from the token,
 * never from the request.
 */
export function authenticatedApi(verify: TokenVerifier, groups: Array<[path: string, routes: Hono<ApiEnv>]>): Hono<ApiEnv> {
  const api = new Hono<ApiEnv>();
  api.use('*', async (c, next) => {
    const token = bearerToken(c.req.header('authorization'));
    if (!token) throw new ConcordError('bad-token', 'send the token as "Authorization: Bearer <token>"');
    c.set('principal', await verify(token));
    await next();
  });
  for (const [path, routes] of groups) api.route(path, routes);
  return api;
}

/** The token of an `Authorization: Bearer <token>` header, if that is what it holds. */
export function bearerToken(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1];
}

/** The document a `/:kind/:id` route addresses, in the caller's tenant, once the token may reach it. */
export function documentOf(c: Context<ApiEnv>): DocumentName {
  const principal = c.get('principal');
  const document = parseDocumentName(`${principal.tenant}/${c.req.param('kind')}/${c.req.param('id')}`);
  checkDocumentAccess(principal, document);
  return document;
}

/** Validates input against a zod schema; a failure is a 400 saying what is wrong. */
export function parsed<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const result = schema.safeParse(input);
  if (!result.success) throw new ConcordError('bad-request', `${what} is not valid: ${describeIssues(result.error)}`);
  return result.data;
}
