import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { contentWriters, checkDocumentAccess } from '../auth/access.ts';
import type { Principal, TokenVerifier } from '../auth/tokens.ts';
import { parseDocumentName, type DocumentName } from '../documents/name.ts';
import type { DocumentService } from '../documents/service.ts';
import { ConcordError } from '../errors.ts';
import type { Presence } from '../presence/presence.ts';

type Env = { Variables: { principal: Principal } };

/**
 * `/api/documents/:kind/:id`: the tenant always comes from the bearer token,
 * never from the request.
 */
export function documentRoutes(verify: TokenVerifier, service: DocumentService, presence: Presence, maxBodyBytes: number): Hono<Env> {
  const api = new Hono<Env>();

  api.use('*', async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    if (!token) throw new ConcordError('bad-token', 'send the token as "Authorization: Bearer <token>"');
    c.set('principal', await verify(token));
    await next();
  });

  api.get('/:kind/:id', async (c) => c.json(await service.read(documentOf(c))));

  api.get('/:kind/:id/presence', async (c) => {
    const document = documentOf(c);
    return c.json({ name: document.name, ...(await presence.list(document.name)) });
  });

  api.patch(
    '/:kind/:id',
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: () => {
        throw new ConcordError('too-large', `the body is larger than ${maxBodyBytes} bytes`);
      },
    }),
    async (c) => {
      const document = documentOf(c);
      const principal = c.get('principal');
      if (!contentWriters.has(principal.role)) throw new ConcordError('not-allowed', `role "${principal.role}" may not edit documents`);
      const body = await c.req.json().catch(() => {
        throw new ConcordError('bad-request', 'the body is not JSON');
      });
      return c.json(await service.patch(principal, document, body));
    },
  );

  return api;
}

function documentOf(c: Context<Env>): DocumentName {
  const principal = c.get('principal');
  const document = parseDocumentName(`${principal.tenant}/${c.req.param('kind')}/${c.req.param('id')}`);
  checkDocumentAccess(principal, document);
  return document;
}
