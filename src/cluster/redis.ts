import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { Logger } from '../log.ts';
import { within } from '../timeouts.ts';

export type { Redis };

// ioredis reports every failed reconnection attempt; one line per outage is enough.
const ERROR_LOG_INTERVAL_MS = 30_000;
const PING_INTERVAL_MS = 5_000;
const PING_TIMEOUT_MS = 2_000;
/** How long a path a client waits on waits for Redis to answer one command. */
export const REDIS_ANSWER_MS = 1_000;

/**
 * The Redis connection of this instance (presence and readiness use it; the
 * relay duplicates it). Commands wait while Redis is away instead of failing
 * after a number of retries: whoever issues them decides how long to wait.
 */
export function connectRedis(url: string, log: Logger): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: null, connectionName: 'concord' });
  let lastLogged = 0;
  redis.on('error', (error) => {
    if (Date.now() - lastLogged < ERROR_LOG_INTERVAL_MS) return;
    lastLogged = Date.now();
    log.warn({ err: error, code: 'redis-unavailable' }, 'Redis connection failed; retrying');
  });
  redis.on('ready', () => {
    if (lastLogged > 0) log.info({ code: 'redis-recovered' }, 'Redis answers again');
    lastLogged = 0;
  });
  return redis;
}

/**
 * Redis's answer to `command`, or what `unanswered()` gives (or throws) once
 * Redis has not answered in REDIS_ANSWER_MS. connectRedis's commands wait for
 * a Redis gone away or silent until it answers again, so every command a
 * client waits on goes through here.
 */
export function redisAnswer<T, F>(command: Promise<T>, unanswered: () => F | PromiseLike<F>): Promise<T | F> {
  return within(command, REDIS_ANSWER_MS, unanswered);
}

/**
 * Drops and reopens a connection whose Redis stopped answering without closing
 * it (commands would otherwise wait behind it for ever); reconnecting hands
 * over to the usual reconnection handling.
 */
export function watchResponsiveness(clients: Redis[], log: Logger): () => void {
  const timer = setInterval(() => {
    for (const client of clients) {
      if (client.status !== 'ready') continue;
      void within(client.ping(), PING_TIMEOUT_MS, () => null).then((answer) => {
        if (answer !== null) return;
        log.warn({ code: 'redis-unresponsive' }, 'Redis did not answer a ping; reconnecting');
        client.disconnect(true);
      }, () => {});
    }
  }, PING_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** A name no other instance has: the configured one, or host, pid and a random suffix. */
export function instanceIdentity(configured: string | undefined): string {
  return configured ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
}
