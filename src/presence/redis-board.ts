import { z } from 'zod';
import type { Redis } from '../cluster/redis.ts';
import type { PresenceBoard } from './presence.ts';
import { presenceStatuses, type PresenceEntry } from './sessions.ts';

// A killed instance's users drop off the board within this long.
const TTL_MS = 15_000;
const READ_TIMEOUT_MS = 1_000;

const publication = z.object({
  expiresAt: z.number(),
  entries: z.array(
    z.object({
      userId: z.string(),
      name: z.string(),
      status: z.enum(presenceStatuses),
      focus: z.record(z.string(), z.string()).nullable(),
      instance: z.string(),
      since: z.string(),
      lastActiveAt: z.string(),
    }),
  ),
});

/**
 * Presence in Redis: one hash per document, one field per instance holding
 * its users and when that expires. Each instance republishes before then, so
 * an instance that stops (or is killed) drops off by itself; the hash expires
 * with its last publisher.
 */
export class RedisPresenceBoard implements PresenceBoard {
  readonly ttlMs = TTL_MS;
  private readonly redis: Redis;
  private readonly instance: string;

  constructor(redis: Redis, instance: string) {
    this.redis = redis;
    this.instance = instance;
  }

  async publish(documentName: string, entries: PresenceEntry[]): Promise<void> {
    this.ensureConnected();
    const key = keyOf(documentName);
    if (entries.length === 0) {
      await this.redis.hdel(key, this.instance);
      return;
    }
    await this.redis
      .multi()
      .hset(key, this.instance, JSON.stringify({ expiresAt: Date.now() + TTL_MS, entries }))
      .pexpire(key, TTL_MS)
      .exec();
  }

  async others(documentName: string): Promise<PresenceEntry[]> {
    this.ensureConnected();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('Redis did not answer in time')), READ_TIMEOUT_MS);
    });
    const fields = await Promise.race([this.redis.hgetall(keyOf(documentName)), timeout]).finally(() => clearTimeout(timer));
    const now = Date.now();
    const entries: PresenceEntry[] = [];
    const expired: string[] = [];
    for (const [instance, value] of Object.entries(fields)) {
      if (instance === this.instance) continue;
      const parsed = publication.safeParse(parseJson(value));
      if (parsed.success && parsed.data.expiresAt > now) entries.push(...(parsed.data.entries as PresenceEntry[]));
      else expired.push(instance);
    }
    // Instances that stopped without taking their users off.
    if (expired.length > 0) this.redis.hdel(keyOf(documentName), ...expired).catch(() => {});
    return entries;
  }

  /** Commands wait for Redis while it is away; presence would rather say so at once. */
  private ensureConnected(): void {
    if (this.redis.status !== 'ready') throw new Error(`Redis is ${this.redis.status}`);
  }
}

function keyOf(documentName: string): string {
  return `concord:presence:${documentName}`;
}

function parseJson(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return null;
  }
}
