import { z } from 'zod';
import { REDIS_ANSWER_MS, type Redis, redisAnswer } from '../cluster/redis.ts';
import { presenceEntrySchema, type PresenceEntry } from './entry.ts';
import type { PresenceBoard } from './presence.ts';

// A killed instance's users drop off the board within this long.
const TTL_MS = 15_000;

const publication = z.array(presenceEntrySchema);

/**
 * Presence in Redis, expired by Redis's own clock: the instances' clocks are
 * never compared. Per document, each instance keeps its users in a key of its
 * own, written with a TTL that every publication renews, and a set names the
 * instances that published, to find their keys (it expires with its last
 * publisher). An instance that stops publishing (killed) drops off when its
 * key expires. Readers then take it out of the set; nothing else ever deletes
 * another instance's data, and its next publication puts it back.
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
    const publishers = publishersKey(documentName);
    const users = usersKey(documentName, this.instance);
    if (entries.length === 0) {
      await this.connected().multi().del(users).srem(publishers, this.instance).exec();
      return;
    }
    await this.connected()
      .multi()
      .set(users, JSON.stringify(entries), 'PX', TTL_MS)
      .sadd(publishers, this.instance)
      .pexpire(publishers, TTL_MS)
      .exec();
  }

  others(documentName: string): Promise<PresenceEntry[]> {
    return redisAnswer(this.read(documentName), () => {
      throw new Error(`Redis did not answer in ${REDIS_ANSWER_MS} ms`);
    });
  }

  private async read(documentName: string): Promise<PresenceEntry[]> {
    const publishers = publishersKey(documentName);
    const instances = (await this.connected().smembers(publishers)).filter((instance) => instance !== this.instance);
    if (instances.length === 0) return [];
    const published = await this.connected().mget(instances.map((instance) => usersKey(documentName, instance)));
    const expired = instances.filter((_, index) => published[index] === null);
    if (expired.length > 0 && this.redis.status === 'ready') this.redis.srem(publishers, ...expired).catch(() => {});
    return published.flatMap((value) => (value === null ? [] : parsePublication(value)));
  }

  /** Commands wait for Redis while it is away; presence would rather say so at once. */
  private connected(): Redis {
    if (this.redis.status !== 'ready') throw new Error(`Redis is ${this.redis.status}`);
    return this.redis;
  }
}

// The braces put a document's keys in one Redis Cluster slot, as MULTI and MGET need.
function publishersKey(documentName: string): string {
  return `concord:presence:{${documentName}}`;
}

function usersKey(documentName: string, instance: string): string {
  return `concord:presence:{${documentName}}:${instance}`;
}

function parsePublication(value: string): PresenceEntry[] {
  try {
    return publication.parse(JSON.parse(value));
  } catch {
    return [];
  }
}
