import { Hono, type Context, type MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { within } from '../timeouts.ts';
import { landingPage } from './landing.ts';

export interface HttpDependencies {
  log: Logger;
  /** This instance's identity, for telling instances apart behind a load balancer. */
  instance: string;
  metrics: Metrics;
  /** Named checks behind /readyz; each resolves when its service answers. */
  readiness: Record<string, () => Promise<void>>;
  /** Brings gauges up to date just before a scrape. */
  refreshGauges(): void;
  /** /metrics is served on a private port of its own (METRICS_PORT), not here. */
  metricsOnOwnPort: boolean;
  /** Mounted at /api. */
  api: Hono<any>;
  /** Mounted at /admin. */
  admin: Hono;
  /** Runs before every route but the probes and /metrics (request-limits.ts). */
  limits: MiddlewareHandler;
}

const READINESS_TIMEOUT_MS = 2_000;

function errorBody(error: ConcordError) {
  return { error: error.toJSON() };
}

export function createHttpApp({ log, instance, metrics, readiness, refreshGauges, metricsOnOwnPort, api, admin, limits }: HttpDependencies): Hono {
  const app = new Hono();

  app.get('/', landingPage);
  app.get('/healthz', (c) => c.json({ status: 'ok', instance }));

  app.get('/readyz', async (c) => {
    const results = await Promise.all(
      Object.entries(readiness).map(async ([name, check]) => [name, await answers(check)] as const),
    );
    const down = results.filter(([, up]) => !up).map(([name]) => name);
    const checks = Object.fromEntries(results.map(([name, up]) => [name, up ? 'up' : 'down']));
    if (down.length === 0) return c.json({ status: 'ready', checks });
    const notReady = new ConcordError('not-ready', `${down.join(' and ')} ${down.length > 1 ? 'are' : 'is'} down`);
    return c.json({ ...errorBody(notReady), checks }, 503);
  });

  if (!metricsOnOwnPort) serveMetrics(app, { metrics, refreshGauges });

  // Registered after the probes and /metrics, which answer without it.
  app.use('*', limits);
  app.route('/api', api);
  app.route('/admin', admin);

  app.notFound(notFound);

  app.onError((error, c) => {
    if (error instanceof ConcordError) {
      metrics.refusals.inc({ code: error.code });
      return c.json(errorBody(error), error.status as ContentfulStatusCode);
    }
    log.error({ err: error, code: 'internal', path: c.req.path }, 'request failed');
    return c.json(errorBody(new ConcordError('internal', 'the server failed to handle this request')), 500);
  });

  return app;
}

/** The app of the private metrics port (METRICS_PORT): /metrics and nothing else. */
export function createMetricsApp(source: Pick<HttpDependencies, 'metrics' | 'refreshGauges'>): Hono {
  const app = new Hono();
  serveMetrics(app, source);
  app.notFound(notFound);
  return app;
}

function serveMetrics(app: Hono, { metrics, refreshGauges }: Pick<HttpDependencies, 'metrics' | 'refreshGauges'>): void {
  app.get('/metrics', async (c) => {
    refreshGauges();
    return c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType });
  });
}

function notFound(c: Context): Response {
  return c.json(errorBody(new ConcordError('not-found', `no route for ${c.req.method} ${c.req.path}`)), 404);
}

async function answers(check: () => Promise<void>): Promise<boolean> {
  try {
    await within(check(), READINESS_TIMEOUT_MS, () => {
      throw new Error('timed out');
    });
    return true;
  } catch {
    return false;
  }
}
