import { Hono, type Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { checkDocumentAccess } from '../auth/access.ts';
import type { Principal } from '../auth/tokens.ts';
import { parseDocumentName } from '../documents/kinds.ts';
import { ConcordError } from '../errors.ts';
import { eventTypes } from '../events/event.ts';
import type { EventFeed, FeedQuery } from '../events/feed.ts';
import { documentOf, parsed, type ApiEnv } from './api.ts';

const MAX_PAGE = 1000;
const MAX_WAIT_SECONDS = 30;
/** A comment line this often keeps proxies from closing a quiet stream. */
const STREAM_HEARTBEAT_MS = 15_000;

const position = z.string().regex(/^\d{1,15}$/, 'expected a feed position (a whole number)').transform(Number);
const typeList = z
  .string()
  .transform((value) => value.split(','))
  .pipe(z.array(z.enum(eventTypes)).min(1));
const filters = {
  after: position.optional(),
  limit: position.pipe(z.number().min(1).max(MAX_PAGE)).default(100),
  type: typeList.optional(),
};
const feedQuery = z
  .object({
    ...filters,
    document: z.string().max(200).optional(),
    wait: position.pipe(z.number().max(MAX_WAIT_SECONDS)).default(0),
  })
  .strict();
const streamQuery = feedQuery.omit({ wait: true });
const documentFeedQuery = z.object(filters).strict();

/**
 * The change-event feed (docs/events.md): `/api/events` for admins, as pages
 * (long-polled with `wait`) or as Server-Sent Events; a document's own events
 * (its activity feed) for anyone who may read it.
 */
export function eventRoutes(feed: EventFeed): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();

  routes.get('/', async (c) => {
    const principal = admin(c);
    const { wait, ...query } = parsed(feedQuery, c.req.query(), 'the query');
    return c.json(await feed.readWaiting(principal.tenant, feedOf(principal, query), wait * 1000, c.req.raw.signal));
  });

  routes.get('/stream', async (c) => {
    const principal = admin(c);
    const { tenant } = principal;
    const query = parsed(streamQuery, c.req.query(), 'the query');
    // A reconnecting EventSource sends the last id it saw.
    const resumeFrom = c.req.header('last-event-id');
    const after = resumeFrom === undefined ? query.after : parsed(position, resumeFrom, 'Last-Event-ID');
    const followed = feedOf(principal, { ...query, after });
    // A cursor that expired is refused before the stream starts, as a plain 410.
    await feed.read(tenant, { ...followed, limit: 1 });
    return streamSSE(c, async (stream) => {
      const stop = new AbortController();
      stream.onAbort(() => stop.abort());
      const heartbeat = setInterval(() => void stream.write(': keep-alive\n\n'), STREAM_HEARTBEAT_MS);
      try {
        await feed.follow(
          tenant,
          followed,
          async ({ events }) => {
            for (const event of events) await stream.writeSSE({ id: String(event.position), event: event.type, data: JSON.stringify(event) });
          },
          stop.signal,
        );
      } finally {
        clearInterval(heartbeat);
      }
    });
  });

  return routes;
}

/** `/api/documents/:kind/:id/events`: the document's activity feed, for anyone who may read it. */
export function documentEventRoutes(feed: EventFeed): Hono<ApiEnv> {
  const routes = new Hono<ApiEnv>();
  routes.get('/:kind/:id/events', async (c) => {
    const document = documentOf(c);
    const { type, ...page } = parsed(documentFeedQuery, c.req.query(), 'the query');
    return c.json(await feed.read(document.tenant, { ...page, types: type, name: document.name }));
  });
  return routes;
}

function admin(c: Context<ApiEnv>): Principal {
  const principal = c.get('principal');
  if (principal.role !== 'admin') throw new ConcordError('not-allowed', `role "${principal.role}" may not read the tenant's events (admin only; a document's own events are at /api/documents/:kind/:id/events)`);
  return principal;
}

/** The query's `document` (`<kind>/<id>`) as a name in the caller's tenant; a token limited to some documents must name one of them. */
function feedOf(principal: Principal, { document, type, ...page }: z.infer<typeof streamQuery>): FeedQuery {
  if (document === undefined) {
    if (principal.docs) throw new ConcordError('not-allowed', 'this token is limited to some documents: name one with ?document=<kind>/<id>');
    return { ...page, types: type };
  }
  const name = parseDocumentName(`${principal.tenant}/${document}`);
  checkDocumentAccess(principal, name);
  return { ...page, types: type, name: name.name };
}
