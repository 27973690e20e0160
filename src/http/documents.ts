import { Hono, type HonoRequest } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { contentWriters } from '../auth/access.ts';
import type { DocumentService } from '../documents/service.ts';
import { ConcordError } from '../errors.ts';
import type { Presence } from '../presence/presence.ts';
import type { DocumentLocks } from '../rules/locks.ts';
import { documentOf, type ApiEnv } from './api.ts';

/** `GET` and `PATCH /api/documents/:kind/:id`, and who has it open and which locks they hold (`/presence`). */
export function documentRoutes(service: DocumentService, presence: Presence, locks: DocumentLocks, maxBodyBytes: number): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();

  routes.get('/:kind/:id', async (c) => c.json(await service.read(documentOf(c))));

  routes.get('/:kind/:id/presence', async (c) => {
    const document = documentOf(c);
    const [list, held] = await Promise.all([presence.list(document.name), locks.list(document)]);
    return c.json({ name: document.name, ...list, locks: held });
  });

  routes.patch('/:kind/:id', jsonBodyLimit(maxBodyBytes), async (c) => {
    const document = documentOf(c);
    const principal = c.get('principal');
    if (!contentWriters.has(principal.role)) throw new ConcordError('not-allowed', `role "${principal.role}" may not edit documents`);
    return c.json(await service.patch(principal, document, await jsonBody(c.req)));
  });

  return routes;
}

export function jsonBodyLimit(maxBodyBytes: number) {
  return bodyLimit({
    maxSize: maxBodyBytes,
    onError: () => {
      throw new ConcordError('too-large', `the body is larger than ${maxBodyBytes} bytes`);
    },
  });
}

/** `application/json` or a `+json` type, with or without parameters. */
const jsonMediaType = /^application\/([\w.-]+\+)?json\s*(;|$)/i;

export async function jsonBody(request: HonoRequest): Promise<unknown> {
  const type = request.header('content-type');
  if (!type || !jsonMediaType.test(type)) {
    throw new ConcordError('unsupported-media-type', `the body must be JSON sent as "Content-Type: application/json" (got ${type ? `"${type.slice(0, 100)}"` : 'no Content-Type'})`);
  }
  return request.json().catch(() => {
    throw new ConcordError('bad-request', 'the body is not JSON');
  });
}
