import { Hono, type Context } from 'hono';
import { z } from 'zod';
import type { Principal } from '../auth/tokens.ts';
import { postgresTime, storableString } from '../documents/values.ts';
import { ConcordError } from '../errors.ts';
import type { HistoryService } from '../history/service.ts';
import { documentOf, parsed, type ApiEnv } from './api.ts';
import { jsonBody, jsonBodyLimit } from './documents.ts';

const MAX_PAGE = 1000;

/** A seq or a cursor in a query string or path: digits only (no "1e3", no "0x10", no ""). */
const wholeNumber = z.string().regex(/^\d{1,15}$/, 'expected a whole number').transform(Number);
const name = storableString.min(1).max(256);

const page = {
  limit: wholeNumber.pipe(z.number().min(1).max(MAX_PAGE)).default(100),
  after: wholeNumber.default(0),
};
const historyQuery = z.object(page).strict();
const changesQuery = z
  .object({ ...page, entity: name.optional(), field: name.optional(), user: name.optional(), since: postgresTime.optional(), until: postgresTime.optional(), fromSeq: wholeNumber.optional(), toSeq: wholeNumber.optional() })
  .strict();
const versionAtQuery = z.object({ at: postgresTime }).strict();
const restoreBody = z.object({ version: z.number().int().min(0) }).strict();
const documentListQuery = z.object({ limit: page.limit, after: storableString.max(256).default('') }).strict();

/**
 * The admin routes under `/api/documents` (docs/history.md): history, audit rows,
 * versions by seq or time, restore, and the list of the tenant's documents.
 * Pages are `?limit=` (1-1000, default 100) and `?after=<cursor>`, where the
 * cursor is the previous page's `next` (null on the last page).
 */
export function historyRoutes(history: HistoryService): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();

  routes.get('/', async (c) => {
    const principal = admin(c);
    return c.json(await history.documentList(principal, parsed(documentListQuery, c.req.query(), 'the query')));
  });

  routes.get('/:kind/:id/history', async (c) => {
    const document = adminDocument(c);
    return c.json(await history.history(document, parsed(historyQuery, c.req.query(), 'the query')));
  });

  routes.get('/:kind/:id/changes', async (c) => {
    const document = adminDocument(c);
    const { limit, after, ...filter } = parsed(changesQuery, c.req.query(), 'the query');
    return c.json(await history.changes(document, filter, { limit, after }));
  });

  routes.get('/:kind/:id/versions', async (c) => {
    const document = adminDocument(c);
    const { at } = parsed(versionAtQuery, c.req.query(), 'the query');
    return timed(c, () => history.versionAt(document, at));
  });

  routes.get('/:kind/:id/versions/:seq', async (c) => {
    const document = adminDocument(c);
    const seq = parsed(wholeNumber, c.req.param('seq'), 'the version');
    return timed(c, () => history.version(document, seq));
  });

  routes.post('/:kind/:id/restore', jsonBodyLimit(64 * 1024), async (c) => {
    const document = adminDocument(c);
    const { version } = parsed(restoreBody, await jsonBody(c.req), 'the body');
    return c.json(await history.restore(c.get('principal'), document, version));
  });

  return routes;
}

function admin(c: Context<ApiEnv>): Principal {
  const principal = c.get('principal');
  if (principal.role !== 'admin') throw new ConcordError('not-allowed', `role "${principal.role}" may not read or restore history (admin only)`);
  return principal;
}

function adminDocument(c: Context<ApiEnv>) {
  admin(c);
  return documentOf(c);
}

/** Answers with the server's own time for the read, and what it was rebuilt from, in a Server-Timing header (the history benchmark reads it). */
async function timed(c: Context<ApiEnv>, read: () => Promise<{ version: object; from: string }>) {
  const started = performance.now();
  const { version, from } = await read();
  c.header('server-timing', `version;dur=${(performance.now() - started).toFixed(2)};desc="${from}"`);
  return c.json(version);
}
