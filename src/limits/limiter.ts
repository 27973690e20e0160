import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';

/** A budget of `points` per `durationSeconds`, kept per key. */
export interface Budget {
  /** Stable name: the Redis key prefix and the `limit` label in /metrics (the setting's name). */
  name: string;
  points: number;
  durationSeconds: number;
}

/** Spends from a budget: null if allowed, else the milliseconds until enough is back. */
export type Spend = (key: string, points?: number) => Promise<number | null>;

/**
 * A per-key rate limit (rate-limiter-flexible). With Redis the budget holds for
 * the whole cluster; while Redis does not answer, each instance falls back to a
 * budget of its own in memory (a limit that fails open would be no limit).
 */
export function createLimiter(budget: Budget, redis: Redis | null): Spend {
  return createRefundableLimiter(budget, redis).spend;
}

/** A rate limit as createLimiter's that can also give back points spent on something that was never served. */
export function createRefundableLimiter(budget: Budget, redis: Redis | null): { spend: Spend; refund(key: string, points: number): Promise<void> } {
  const options = { keyPrefix: `concord:limit:${budget.name}`, points: budget.points, duration: budget.durationSeconds };
  const memory = new RateLimiterMemory(options);
  const limiter: RateLimiterAbstract = redis
    ? new RateLimiterRedis({ ...options, storeClient: redis, rejectIfRedisNotReady: true, insuranceLimiter: memory })
    : memory;
  return {
    async spend(key, points = 1) {
      try {
        await limiter.consume(key, points);
        return null;
      } catch (refused) {
        if (refused instanceof RateLimiterRes) return Math.max(refused.msBeforeNext, 1);
        throw refused;
      }
    },
    async refund(key, points) {
      await limiter.reward(key, points);
    },
  };
}
