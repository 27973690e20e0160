import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { ConcordError } from '../errors.ts';
import { eventTypes } from '../events/event.ts';
import type { WebhookEndpoints } from '../webhooks/endpoints.ts';
import { parsed, type ApiEnv } from './api.ts';
import { jsonBody, jsonBodyLimit } from './documents.ts';

const MAX_URL_CHARS = 2048;
const MAX_PAGE = 1000;
const BODY_LIMIT = 16 * 1024;

const wholeNumber = z.string().regex(/^\d{1,15}$/, 'expected a whole number').transform(Number);
const registration = z
  .object({
    url: z
      .string()
      .max(MAX_URL_CHARS)
      .pipe(z.url({ protocol: /^https?$/, error: 'expected an http or https URL' })),
    types: z.array(z.enum(eventTypes)).min(1).max(eventTypes.length * 2).optional(),
  })
  .strict();
const deliveriesQuery = z
  .object({
    limit: wholeNumber.pipe(z.number().min(1).max(MAX_PAGE)).default(100),
    before: wholeNumber.default(0),
  })
  .strict();
const replayBody = z.object({ after: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER) }).strict();

/**
 * `/api/webhooks` (admin only, docs/webhooks.md): register an endpoint (the
 * answer is the only one with its secret), list, remove, read its delivery
 * log (newest first, `?before=<next>` pages), replay from a feed position.
 */
export function webhookRoutes(endpoints: WebhookEndpoints): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();

  routes.post('/', jsonBodyLimit(BODY_LIMIT), async (c) => {
    const tenant = admin(c);
    const { url, types } = parsed(registration, await jsonBody(c.req), 'the body');
    return c.json(await endpoints.register(tenant, { url, ...(types && { types }) }), 201);
  });

  routes.get('/', async (c) => c.json({ endpoints: await endpoints.list(admin(c)) }));

  routes.delete('/:id', async (c) => {
    await endpoints.remove(admin(c), endpointId(c));
    return c.body(null, 204);
  });

  routes.get('/:id/deliveries', async (c) => {
    const tenant = admin(c);
    return c.json(await endpoints.deliveries(tenant, endpointId(c), parsed(deliveriesQuery, c.req.query(), 'the query')));
  });

  routes.post('/:id/replay', jsonBodyLimit(BODY_LIMIT), async (c) => {
    const tenant = admin(c);
    const id = endpointId(c);
    const { after } = parsed(replayBody, await jsonBody(c.req), 'the body');
    return c.json(await endpoints.replay(tenant, id, after));
  });

  return routes;
}

/** The caller's tenant, once the caller is its admin. */
function admin(c: Context<ApiEnv>): string {
  const principal = c.get('principal');
  if (principal.role !== 'admin') throw new ConcordError('not-allowed', `role "${principal.role}" may not manage webhooks (admin only)`);
  return principal.tenant;
}

/** An id that is no UUID names no endpoint. */
function endpointId(c: Context<ApiEnv>): string {
  const id = c.req.param('id')!;
  if (!z.uuid().safeParse(id).success) throw new ConcordError('not-found', `no webhook endpoint ${id.slice(0, 64)}`);
  return id.toLowerCase();
}
