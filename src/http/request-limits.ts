import { getConnInfo } from '@hono/node-server/conninfo';
import type { MiddlewareHandler } from 'hono';
import type { Redis } from 'ioredis';
import type { TokenVerifier } from '../auth/tokens.ts';
import { ConcordError } from '../errors.ts';
import { createLimiter } from '../limits/limiter.ts';
import type { Metrics } from '../metrics.ts';
import { bearerToken } from './api.ts';

export interface RequestLimitSettings {
  HTTP_REQUESTS_PER_MINUTE: number;
  HTTP_ANONYMOUS_REQUESTS_PER_MINUTE: number;
}

/**
 * HTTP requests per minute: per user (tenant and subject of a verified token),
 * and per client address for requests with no token or a refused one, so
 * guessing tokens costs the same budget as sending none. Cluster-wide through
 * Redis when there is one. Beyond the budget: 429 `rate-limited` with
 * Retry-After in seconds.
 */
export function requestLimits(settings: RequestLimitSettings, verify: TokenVerifier, redis: Redis | null, metrics: Metrics): MiddlewareHandler {
  const perUser = createLimiter({ name: 'HTTP_REQUESTS_PER_MINUTE', points: settings.HTTP_REQUESTS_PER_MINUTE, durationSeconds: 60 }, redis);
  const perAddress = createLimiter({ name: 'HTTP_ANONYMOUS_REQUESTS_PER_MINUTE', points: settings.HTTP_ANONYMOUS_REQUESTS_PER_MINUTE, durationSeconds: 60 }, redis);

  return async (c, next) => {
    const principal = await verify(bearerToken(c.req.header('authorization')) ?? '').catch((error: unknown) => {
      if (error instanceof ConcordError) return null;
      throw error;
    });
    const [limit, waitMs] = principal
      ? (['HTTP_REQUESTS_PER_MINUTE', await perUser(JSON.stringify([principal.tenant, principal.userId]))] as const)
      : (['HTTP_ANONYMOUS_REQUESTS_PER_MINUTE', await perAddress(getConnInfo(c).remote.address ?? 'unknown')] as const);
    if (waitMs === null) return next();
    metrics.limitsReached.inc({ limit });
    const seconds = Math.ceil(waitMs / 1000);
    c.header('retry-after', String(seconds));
    throw new ConcordError('rate-limited', `more than ${settings[limit]} requests in a minute (${limit}); retry in ${seconds} s`);
  };
}
