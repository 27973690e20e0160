import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { type Redis, redisAnswer } from '../cluster/redis.ts';

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
  // Not ready: the insurance limiter at once. Ready but unanswered: the budget in memory decides
  // (the spend may still count in Redis later).
  const shared = redis && new RateLimiterRedis({ ...options, storeClient: redis, rejectIfRedisNotReady: true, insuranceLimiter: memory });
  return {
    async spend(key, points = 1) {
      try {
        await (shared ? redisAnswer(shared.consume(key, points), () => memory.consume(key, points)) : memory.consume(key, points));
        return null;
      } catch (refused) {
        if (refused instanceof RateLimiterRes) return Math.max(refused.msBeforeNext, 1);
        throw refused;
      }
    },
    // Not bounded: nobody waits for a refund, and one given in memory after the wait could be given twice.
    async refund(key, points) {
      await (shared ?? memory).reward(key, points);
    },
  };
}
