import { Hono } from 'hono';
import { z } from 'zod';
import type { DocumentLocks } from '../rules/locks.ts';
import { documentOf, parsed, type ApiEnv } from './api.ts';
import { jsonBody, jsonBodyLimit } from './documents.ts';

const MAX_PAGE = 1000;
const BODY_LIMIT = 4 * 1024;

const wholeNumber = z.string().regex(/^\d{1,15}$/, 'expected a whole number').transform(Number);
const lockBody = z.object({ target: z.string().max(300), ttlSeconds: z.number().optional() }).strict();
const logQuery = z
  .object({
    limit: wholeNumber.pipe(z.number().min(1).max(MAX_PAGE)).default(100),
    before: wholeNumber.default(0),
  })
  .strict();

/**
 * `/api/documents/:kind/:id/locks` (docs/locks.md): take or renew a lock
 * (editors and admins), list the locks (anyone who may read the document),
 * release one (its holder) or break it (admins), read the audit log (admins).
 */
export function lockRoutes(locks: DocumentLocks): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();

  routes.post('/:kind/:id/locks', jsonBodyLimit(BODY_LIMIT), async (c) => {
    const document = documentOf(c);
    const { target, ttlSeconds } = parsed(lockBody, await jsonBody(c.req), 'the body');
    return c.json(await locks.acquire(c.get('principal'), document, target, ttlSeconds), 201);
  });

  routes.get('/:kind/:id/locks', async (c) => c.json({ locks: await locks.list(documentOf(c)) }));

  routes.get('/:kind/:id/locks/log', async (c) => {
    const document = documentOf(c);
    return c.json(await locks.auditLog(c.get('principal'), document, parsed(logQuery, c.req.query(), 'the query')));
  });

  routes.delete('/:kind/:id/locks/:target', async (c) => {
    await locks.release(c.get('principal'), documentOf(c), c.req.param('target'));
    return c.body(null, 204);
  });

  return routes;
}
