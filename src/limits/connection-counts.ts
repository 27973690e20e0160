import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { REDIS_ANSWER_MS, type Redis, redisAnswer } from '../cluster/redis.ts';

// A killed instance's connections stop counting within this long.
const TTL_MS = 15_000;
const RENEW_EVERY_MS = 5_000;

/** Whose connection it is. */
export interface Owner {
  tenant: string;
  userId: string;
}

export interface ConnectionBounds {
  perUser: number;
  perTenant: number;
}

/** The setting whose bound a new connection would pass. */
export type FullLimit = 'MAX_CONNECTIONS_PER_USER' | 'MAX_CONNECTIONS_PER_TENANT';

// Drops the places whose holders stopped renewing them, then takes one in
// both sets if both have room (atomic: two instances cannot both take the last
// place). Scores are expiry times on Redis's clock: instances' clocks are never compared.
const TAKE = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 'MAX_CONNECTIONS_PER_USER' end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 'MAX_CONNECTIONS_PER_TENANT' end
local expires = now + tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, expires, ARGV[1])
  redis.call('PEXPIRE', key, ARGV[2])
end
return false
`;

// Renews (or puts back, after Redis lost it) one place in both sets.
const RENEW = `
local time = redis.call('TIME')
local expires = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) + tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, expires, ARGV[1])
  redis.call('PEXPIRE', key, ARGV[2])
end
`;

/**
 * Connections open per user and per tenant. Without Redis, this instance's.
 * With Redis, the whole cluster's: per tenant and per user a sorted set holds
 * one member per open connection of any instance, scored by when it expires;
 * each instance renews its own members every few seconds, so a killed
 * instance's connections stop counting after a TTL and nothing leaks. While
 * Redis does not answer, each instance counts only its own connections (the
 * bounds still hold per instance: a limit that fails open would be no limit),
 * and puts them back into Redis at its next renewal once Redis answers.
 */
export class ConnectionCounts {
  private readonly redis: Redis | null;
  private readonly instance: string;
  private readonly bounds: ConnectionBounds;
  /** This instance's open connections: member to owner. */
  private readonly held = new Map<string, Owner>();
  private readonly perUser = new Map<string, number>();
  private readonly perTenant = new Map<string, number>();
  private readonly renewal: NodeJS.Timeout | undefined;

  constructor(redis: Redis | null, instance: string, bounds: ConnectionBounds) {
    this.redis = redis;
    this.instance = instance;
    this.bounds = bounds;
    if (redis) {
      this.renewal = setInterval(() => this.renewAll(), RENEW_EVERY_MS);
      this.renewal.unref();
    }
  }

  /** A place for one more connection of `owner` (its member, to release), or the limit that is full. */
  async take(owner: Owner): Promise<{ member: string } | { full: FullLimit }> {
    // Random bytes in one flat string: randomUUID's is a rope of about 16 strings, kept as long as the connection.
    const member = `${this.instance}/${randomBytes(16).toString('base64url')}`;
    const answer = await this.askRedis(member, owner);
    // Redis's count already includes this instance's connections.
    const full = answer === 'no answer' ? this.fullHere(owner) : answer === 'taken' ? undefined : answer;
    if (full) return { full };
    this.held.set(member, owner);
    count(this.perUser, userKey(owner), 1);
    count(this.perTenant, owner.tenant, 1);
    return { member };
  }

  release(member: string): void {
    const owner = this.held.get(member);
    if (!owner) return;
    this.held.delete(member);
    count(this.perUser, userKey(owner), -1);
    count(this.perTenant, owner.tenant, -1);
    // While Redis is away the member expires there on its own.
    if (this.redis?.status === 'ready') this.redis.multi().zrem(tenantSet(owner), member).zrem(userSet(owner), member).exec().catch(() => {});
  }

  close(): void {
    clearInterval(this.renewal);
  }

  /** Takes the place in Redis; without an answer in time the local count decides (a place Redis takes later expires there unrenewed). */
  private async askRedis(member: string, owner: Owner): Promise<FullLimit | 'taken' | 'no answer'> {
    if (!this.redis || !(await this.connected(this.redis))) return 'no answer';
    const taking = this.redis.eval(TAKE, 2, tenantSet(owner), userSet(owner), member, TTL_MS, this.bounds.perUser, this.bounds.perTenant) as Promise<FullLimit | null>;
    const answer = await redisAnswer(taking, () => 'no answer' as const).catch(() => 'no answer' as const);
    return answer ?? 'taken';
  }

  /**
   * Whether Redis answers: at once when connected, else once it reconnects
   * within the wait (a connection dropped for an unanswered ping comes back in
   * milliseconds); a failed attempt or the end of the wait says no.
   */
  private async connected(redis: Redis): Promise<boolean> {
    if (redis.status === 'ready') return true;
    return once(redis, 'ready', { signal: AbortSignal.timeout(REDIS_ANSWER_MS) }).then(
      () => true,
      () => false,
    );
  }

  private fullHere(owner: Owner): FullLimit | undefined {
    if ((this.perUser.get(userKey(owner)) ?? 0) >= this.bounds.perUser) return 'MAX_CONNECTIONS_PER_USER';
    if ((this.perTenant.get(owner.tenant) ?? 0) >= this.bounds.perTenant) return 'MAX_CONNECTIONS_PER_TENANT';
    return undefined;
  }

  private renewAll(): void {
    if (this.redis?.status !== 'ready' || this.held.size === 0) return;
    const pipeline = this.redis.pipeline();
    for (const [member, owner] of this.held) pipeline.eval(RENEW, 2, tenantSet(owner), userSet(owner), member, TTL_MS);
    pipeline.exec().catch(() => {});
  }
}

function count(counts: Map<string, number>, key: string, by: number): void {
  const next = (counts.get(key) ?? 0) + by;
  if (next > 0) counts.set(key, next);
  else counts.delete(key);
}

function userKey(owner: Owner): string {
  return `${owner.tenant}\0${owner.userId}`;
}

// The braces put a tenant's sets in one Redis Cluster slot, as the scripts need;
// encoding keeps a name's own braces and colons from changing the slot or colliding.
function tenantSet(owner: Owner): string {
  return `concord:connections:{${encodeURIComponent(owner.tenant)}}`;
}

function userSet(owner: Owner): string {
  return `${tenantSet(owner)}:${encodeURIComponent(owner.userId)}`;
}
