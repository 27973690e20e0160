import type { Logger } from '../log.ts';
import { REDIS_ANSWER_MS, type Redis, redisAnswer } from './redis.ts';

const REFRESH_MS = 1_000;
// A stopped instance's beacons are gone this long after its last refresh.
const TTL_MS = 3_000;

/**
 * Says in Redis, per document, which instances hold updates they have not
 * logged yet: a key per instance and document that lives while the instance
 * keeps refreshing it (every second, while its update log has the document
 * pending), so a killed instance's beacons expire by themselves. Another
 * instance logs relayed content nobody logged only when no live instance
 * holds unlogged updates of that document (see LogFollower).
 */
export class UnloggedBeacon {
  private readonly redis: Redis;
  private readonly instance: string;
  private readonly log: Logger;
  private readonly pendingDocuments: () => string[];
  private lit = new Set<string>();
  private readonly timer: NodeJS.Timeout;

  constructor(redis: Redis, instance: string, pendingDocuments: () => string[], log: Logger) {
    this.redis = redis;
    this.instance = instance;
    this.pendingDocuments = pendingDocuments;
    this.log = log;
    this.timer = setInterval(() => void this.refresh(), REFRESH_MS);
    this.timer.unref();
  }

  /** Whether an instance other than this one may hold unlogged updates of `documentName`; throws when Redis cannot tell (in time). */
  othersHoldUnlogged(documentName: string): Promise<boolean> {
    this.ensureConnected();
    // Unbounded, the check that asks (LogFollower's) would hold the acknowledgements waiting on it.
    return redisAnswer(this.askOthers(documentName), () => {
      throw new Error(`Redis did not answer in ${REDIS_ANSWER_MS} ms`);
    });
  }

  private async askOthers(documentName: string): Promise<boolean> {
    const instances = (await this.redis.smembers(setKey(documentName))).filter((instance) => instance !== this.instance);
    if (instances.length === 0) return false;
    const beacons = await this.redis.mget(instances.map((instance) => beaconKey(documentName, instance)));
    const gone = instances.filter((_, index) => beacons[index] === null);
    // Safe against a fresh beacon: lighting one adds its instance to the set again.
    if (gone.length > 0) await this.redis.srem(setKey(documentName), ...gone);
    return gone.length < instances.length;
  }

  close(): void {
    clearInterval(this.timer);
  }

  private async refresh(): Promise<void> {
    if (this.redis.status !== 'ready') return;
    const pending = new Set(this.pendingDocuments());
    const batch = this.redis.multi();
    for (const name of pending) {
      batch.set(beaconKey(name, this.instance), '1', 'PX', TTL_MS).sadd(setKey(name), this.instance).pexpire(setKey(name), TTL_MS * 10);
    }
    for (const name of this.lit) if (!pending.has(name)) batch.del(beaconKey(name, this.instance));
    this.lit = pending;
    try {
      await batch.exec();
    } catch (error) {
      this.log.debug({ err: error, code: 'beacon-failed' }, 'could not refresh the unlogged-updates beacons');
    }
  }

  private ensureConnected(): void {
    if (this.redis.status !== 'ready') throw new Error(`Redis is ${this.redis.status}`);
  }
}

function setKey(documentName: string): string {
  return `concord:unlogged:${documentName}`;
}

function beaconKey(documentName: string, instance: string): string {
  return `concord:unlogged:${documentName}:${instance}`;
}
