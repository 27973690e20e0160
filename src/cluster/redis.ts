import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { Logger } from '../log.ts';

export type { Redis };

// ioredis reports every failed reconnection attempt; one line per outage is enough.
const ERROR_LOG_INTERVAL_MS = 30_000;

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
 * Refuses to start as an identity a running instance already has: the relay
 * ignores messages carrying its own identity, so two instances sharing one
 * would silently stop hearing each other. Each instance listens on a reply
 * channel named after its identity (extension-redis: `<prefix>#reply:<id>`).
 * Redis not answering in time is not a reason to refuse: it may come later.
 */
export async function ensureUniqueIdentity(redis: Redis, identity: string, log: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const listeners = redis.pubsub('NUMSUB', `concord#reply:${identity}`) as Promise<[string, number]>;
  const answer = await Promise.race([listeners, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), 2_000)))]);
  clearTimeout(timer);
  if (answer === null) log.warn({ code: 'redis-unavailable' }, 'Redis did not answer at start; not checking that the instance identity is unique');
  else if (Number(answer[1]) > 0) throw new Error(`another running instance has the identity "${identity}": give each instance its own INSTANCE_ID`);
}

/** A name no other instance has: the configured one, or host, pid and a random suffix. */
export function instanceIdentity(configured: string | undefined): string {
  return configured ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
}
