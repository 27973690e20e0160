import { Redis as RedisExtension } from '@hocuspocus/extension-redis';
import type {
  afterLoadDocumentPayload,
  beforeBroadcastStatelessPayload,
  Document,
  onAwarenessUpdatePayload,
  onChangePayload,
} from '@hocuspocus/server';
import type { Logger } from '../log.ts';
import { within } from '../timeouts.ts';
import type { Redis } from './redis.ts';

const PREFIX = 'concord';
// A load waits at most this long for Redis (subscribing, a peer's state); the rest completes in the background.
const ATTACH_WAIT_MS = 2_000;

/**
 * Refuses to start as an identity a running instance already has: the relay
 * ignores messages carrying its own identity, so two instances sharing one
 * would silently stop hearing each other. Each instance listens on a reply
 * channel named after its identity (extension-redis: `<prefix>#reply:<id>`).
 * Redis not answering in time is not a reason to refuse: it may come later.
 */
export async function ensureUniqueIdentity(redis: Redis, identity: string, log: Logger): Promise<void> {
  const listening = redis.pubsub('NUMSUB', `${PREFIX}#reply:${identity}`) as Promise<[string, number]>;
  const answer = await within(listening, 2_000, () => null);
  if (answer === null) log.warn({ code: 'redis-unavailable' }, 'Redis did not answer at start; not checking that the instance identity is unique');
  else if (Number(answer[1]) > 0) throw new Error(`another running instance has the identity "${identity}": give each instance its own INSTANCE_ID`);
}

/**
 * Relays document updates and awareness between instances through Redis
 * (@hocuspocus/extension-redis 4.7), adapted to how Concord persists:
 *
 * - Every update is logged by the instance that received it from its client,
 *   as it arrives (Persistence). Updates relayed from other instances carry
 *   the origin `redis` and are never logged again. The store hook only waits
 *   for the log, so the extension's store lock is left out: it is Redlock
 *   without retries, which skips the store when another instance holds the
 *   lock and, indistinguishably, when Redis is down.
 * - Redis going away never stops an instance: documents load without waiting
 *   for it and nothing is published while it is away (each instance keeps
 *   serving and logging its own clients). When both connections answer again
 *   every loaded document is attached again: subscribed, its state vector
 *   published (a peer answers with what we lack and asks for what it lacks)
 *   and its awareness asked for, so the instances converge without a restart.
 */
export class InstanceRelay extends RedisExtension {
  // After Concord's own hooks (the extension's default of 1000 put it first for the store lock):
  // a document's listeners are in place before a peer's state arrives during its load.
  override priority = 50;
  private readonly log: Logger;
  private detached = false;

  constructor(redis: Redis, identifier: string, log: Logger) {
    super({ redis, identifier, prefix: PREFIX });
    this.log = log;
    for (const client of [this.pub, this.sub]) {
      // The connection they were duplicated from reports Redis going away (connectRedis).
      client.on('error', () => {});
      client.on('close', () => {
        this.detached = true;
      });
      client.on('ready', () => {
        if (!this.detached || !this.redisAnswers) return;
        this.detached = false;
        this.attachAll();
      });
    }
  }

  /** The relay's own connections (publishing and subscribed), for watching and readiness. */
  get connections(): Redis[] {
    return [this.pub as Redis, this.sub as Redis];
  }

  get redisAnswers(): boolean {
    return this.pub.status === 'ready' && this.sub.status === 'ready';
  }

  override async onStoreDocument(): Promise<void> {}

  override async afterStoreDocument(): Promise<void> {}

  override async afterLoadDocument({ documentName, document }: afterLoadDocumentPayload): Promise<void> {
    // While Redis is away the document is attached once it answers again.
    if (this.redisAnswers) await this.attach(documentName, document);
  }

  override async onChange(data: onChangePayload): Promise<void> {
    if (this.redisAnswers) await super.onChange(data);
  }

  override async onAwarenessUpdate(data: onAwarenessUpdatePayload): Promise<void> {
    if (this.redisAnswers) await super.onAwarenessUpdate(data);
  }

  override async beforeBroadcastStateless(data: beforeBroadcastStatelessPayload): Promise<number> {
    return this.redisAnswers ? super.beforeBroadcastStateless(data) : 0;
  }

  /** Closes both connections at once: the extension's own quits and waits for Redis, which may never answer. */
  override async onDestroy(): Promise<void> {
    this.pub.disconnect();
    this.sub.disconnect();
  }

  private attachAll(): void {
    this.log.info({ code: 'relay-reattached', documents: this.instance.documents.size }, 'Redis is back: exchanging state with the other instances');
    for (const [documentName, document] of this.instance.documents) void this.attach(documentName, document);
  }

  /** Subscribes to the document's channel and exchanges state with the instances that have it open. */
  private async attach(documentName: string, document: Document): Promise<void> {
    const attached = super.afterLoadDocument({ documentName, document } as afterLoadDocumentPayload).catch((error: unknown) => {
      this.log.warn({ err: error, code: 'relay-attach-failed', document: documentName }, 'could not attach the document to Redis; it is attached again when Redis answers');
    });
    await within(attached, ATTACH_WAIT_MS, () => undefined);
  }
}
