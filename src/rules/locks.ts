import type { Document } from '@hocuspocus/server';
import { z } from 'zod';
import { contentWriters } from '../auth/access.ts';
import type { Principal } from '../auth/tokens.ts';
import type { Redis } from '../cluster/redis.ts';
import type { Database } from '../db/database.ts';
import { acquireLock, deleteLock, deleteLocksOf, insertLockLog, liveLocks, lockForUpdate, lockLog, type LockRow } from '../db/locks.ts';
import { kindOf, parseDocumentName } from '../documents/kinds.ts';
import type { DocumentName } from '../documents/name.ts';
import { memberId } from '../documents/values.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { within } from '../timeouts.ts';

/** A lock on a target of a document, as clients see it. */
export interface Lock {
  target: string;
  userId: string;
  name: string | null;
  /** ISO time: the lock holds until then unless renewed. */
  until: string;
}

export interface LockSettings {
  LOCK_TTL_SECONDS: number;
  LOCK_MAX_TTL_SECONDS: number;
}

/** Where instances tell each other which document's locks changed (the others read them again from Postgres). */
const CHANNEL = 'concord:locks';
const changeMessage = z.object({ instance: z.string(), name: z.string() });
// After a failed read of a loaded document's locks, it is read again this much later.
const RETRY_MS = 1_000;
// setTimeout's longest delay; a later expiry is re-checked when it fires.
const MAX_TIMER_MS = 2 ** 31 - 1;
// Shutting down waits this long for releases under way (the holders' connections just closed).
const CLOSE_WAIT_MS = 2_000;

interface Loaded {
  document: Document;
  locks: Lock[];
  /** Counts this instance's own changes: a read that started before one is read again. */
  version: number;
  reading: boolean;
  readAgain: boolean;
  /** The last read failed (logged once until one succeeds). */
  failing: boolean;
  expiry: NodeJS.Timeout | undefined;
  /** The `concord:locks` message the document's connections have last been sent. */
  sent: string;
}

/**
 * Locks users take on targets of a document (`line:<id>`, `section:<id>`,
 * `field:<key>`), held until a time, renewed by taking them again. Postgres
 * is the truth and decides between rivals on every instance. Each instance
 * keeps the locks of its loaded documents in memory, for the rule check
 * (`held`, synchronous) and to tell the document's connections here: its own
 * changes at once, other instances' when they say so through Redis (the
 * locks are then read again), expiries when they come (nothing is written:
 * an expired row is free in Postgres too).
 */
export class DocumentLocks {
  private readonly db: Database;
  private readonly redis: Redis | null;
  private readonly subscriber: Redis | null;
  private readonly instance: string;
  private readonly settings: LockSettings;
  private readonly log: Logger;
  private readonly loaded = new Map<string, Loaded>();
  /** Releases of holders who left, awaited at shutdown. */
  private readonly releasing = new Set<Promise<void>>();

  constructor(options: { db: Database; redis: Redis | null; instance: string; settings: LockSettings; log: Logger }) {
    this.db = options.db;
    this.redis = options.redis;
    this.instance = options.instance;
    this.settings = options.settings;
    this.log = options.log;
    this.subscriber = this.redis && this.subscribe(this.redis);
  }

  /** The unexpired locks of a document loaded on this instance; none for any other. */
  held(documentName: string): readonly Lock[] {
    const loaded = this.loaded.get(documentName);
    if (!loaded) return [];
    const now = Date.now();
    return loaded.locks.filter((lock) => Date.parse(lock.until) > now);
  }

  /** The `concord:locks` message telling a client the document's locks as this instance knows them. */
  message(documentName: string): string {
    return locksMessage(this.held(documentName));
  }

  /** The document's locks, from Postgres. */
  async list(document: DocumentName): Promise<Lock[]> {
    return (await this.db.single(document.tenant, (sql) => liveLocks(sql, document.name))).map(lockOf);
  }

  /** Takes `target` for the caller (editors and admins), or renews their lock on it; `locked` when another user holds it. */
  async acquire(principal: Principal, document: DocumentName, target: string, ttlSeconds = this.settings.LOCK_TTL_SECONDS): Promise<Lock> {
    if (!contentWriters.has(principal.role)) throw new ConcordError('not-allowed', `role "${principal.role}" may not lock (editors and admins may)`);
    checkTarget(document, target);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > this.settings.LOCK_MAX_TTL_SECONDS) {
      throw new ConcordError('bad-request', `ttlSeconds must be a whole number from 1 to ${this.settings.LOCK_MAX_TTL_SECONDS} (LOCK_MAX_TTL_SECONDS)`);
    }
    const lock = await this.db.transaction(document.tenant, async (sql) => {
      const taken = await acquireLock(sql, { name: document.name, target, userId: principal.userId, userName: principal.name, ttlSeconds });
      if (!taken) {
        // The refused upsert locked the row: the holder read now is the one that refused it.
        const holder = (await lockForUpdate(sql, document.name, target))!;
        throw lockedBy(holder);
      }
      const action = taken.acquired ? 'acquired' : 'renewed';
      await insertLockLog(sql, document.name, [{ target, action, holderId: principal.userId, byId: principal.userId, until: taken.until }]);
      return lockOf(taken);
    });
    this.changed(document.name, (locks) => [...locks.filter((held) => held.target !== target), lock]);
    return lock;
  }

  /** Releases the caller's lock on `target`, or breaks another's (admins); `not-found` when nobody holds it. */
  async release(principal: Principal, document: DocumentName, target: string): Promise<void> {
    checkTarget(document, target);
    await this.db.transaction(document.tenant, async (sql) => {
      const held = await lockForUpdate(sql, document.name, target);
      if (!held) throw new ConcordError('not-found', `nobody holds a lock on ${target}`);
      const own = held.user_id === principal.userId;
      if (!own && principal.role !== 'admin') {
        throw new ConcordError('not-allowed', `${target} is locked by ${held.user_name ?? held.user_id}: only they release it, or an admin breaks it`, { details: holderDetails(held) });
      }
      await deleteLock(sql, document.name, target);
      await insertLockLog(sql, document.name, [{ target, action: own ? 'released' : 'broken', holderId: held.user_id, byId: principal.userId, until: held.until }]);
    });
    this.changed(document.name, (locks) => locks.filter((held) => held.target !== target));
  }

  /** Releases every lock `userId` holds on the document (they left it); failures are logged. */
  releaseAllOf(document: DocumentName, userId: string): void {
    const released = this.db
      .transaction(document.tenant, async (sql) => {
        const deleted = await deleteLocksOf(sql, document.name, userId);
        await insertLockLog(sql, document.name, deleted.map((held) => ({ target: held.target, action: 'released' as const, holderId: userId, byId: userId, until: held.until })));
        return deleted.map((held) => held.target);
      })
      .then((targets) => {
        if (targets.length > 0) this.changed(document.name, (locks) => locks.filter((held) => !targets.includes(held.target)));
      })
      .catch((error: unknown) => {
        this.log.warn({ err: error, code: 'locks-not-released', document: document.name, userId }, 'could not release the locks of a user who left; they expire');
      })
      .finally(() => this.releasing.delete(released));
    this.releasing.add(released);
  }

  /** The document's lock audit log, newest first (admins); `next` is the `before` of the following page (null on the last). */
  async auditLog(principal: Principal, document: DocumentName, page: { before: number; limit: number }) {
    if (principal.role !== 'admin') throw new ConcordError('not-allowed', `role "${principal.role}" may not read the lock log (admin only)`);
    const rows = await this.db.single(document.tenant, (sql) => lockLog(sql, document.name, page));
    return {
      entries: rows.map((row) => ({
        number: Number(row.number),
        target: row.target,
        action: row.action,
        holderId: row.holder_id,
        byId: row.by_id,
        until: iso(row.until),
        at: iso(row.at),
      })),
      next: rows.length === page.limit ? Number(rows.at(-1)!.number) : null,
    };
  }

  /** Starts keeping the locks of a document that loaded here (a failed read is retried). */
  async load(documentName: string, document: Document): Promise<void> {
    const loaded: Loaded = { document, locks: [], version: 0, reading: true, readAgain: false, failing: false, expiry: undefined, sent: locksMessage([]) };
    this.loaded.set(documentName, loaded);
    await this.read(documentName, loaded);
  }

  forget(documentName: string): void {
    clearTimeout(this.loaded.get(documentName)?.expiry);
    this.loaded.delete(documentName);
  }

  async close(): Promise<void> {
    await within(Promise.allSettled(this.releasing), CLOSE_WAIT_MS, () => undefined);
    for (const name of [...this.loaded.keys()]) this.forget(name);
    this.subscriber?.disconnect();
  }

  /** After this instance changed a document's locks: its cache at once, then the other instances, then Postgres's word. */
  private changed(documentName: string, change: (locks: Lock[]) => Lock[]): void {
    this.publish(documentName);
    const loaded = this.loaded.get(documentName);
    if (!loaded) return;
    loaded.version += 1;
    this.show(documentName, loaded, change(loaded.locks));
    // Changes made here at once may commit in one order and land here in another.
    this.refresh(documentName);
  }

  private refresh(documentName: string): void {
    const loaded = this.loaded.get(documentName);
    if (!loaded) return;
    if (loaded.reading) {
      loaded.readAgain = true;
      return;
    }
    loaded.reading = true;
    void this.read(documentName, loaded);
  }

  /** Reads the document's locks until a read is not overtaken by a change made here meanwhile; never throws. */
  private async read(documentName: string, loaded: Loaded): Promise<void> {
    const { tenant } = parseDocumentName(documentName);
    try {
      do {
        loaded.readAgain = false;
        const version = loaded.version;
        const rows = await this.db.single(tenant, (sql) => liveLocks(sql, documentName));
        if (this.loaded.get(documentName) !== loaded) return;
        loaded.failing = false;
        if (loaded.version === version) this.show(documentName, loaded, rows.map(lockOf));
        else loaded.readAgain = true;
      } while (loaded.readAgain);
    } catch (error) {
      if (!loaded.failing) this.log.warn({ err: error, code: 'locks-not-read', document: documentName }, 'could not read the locks of a document; trying again every second');
      loaded.failing = true;
      setTimeout(() => this.refresh(documentName), RETRY_MS).unref();
    } finally {
      loaded.reading = false;
    }
  }

  /** Keeps `locks` (the unexpired ones), tells the document's connections here if that changes what they were told, and waits for the next expiry. */
  private show(documentName: string, loaded: Loaded, locks: Lock[]): void {
    const now = Date.now();
    loaded.locks = locks.filter((lock) => Date.parse(lock.until) > now).sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
    clearTimeout(loaded.expiry);
    loaded.expiry = undefined;
    if (loaded.locks.length > 0) {
      const next = Math.min(...loaded.locks.map((lock) => Date.parse(lock.until)));
      loaded.expiry = setTimeout(() => this.show(documentName, loaded, loaded.locks), Math.min(next - now + 1, MAX_TIMER_MS));
      loaded.expiry.unref();
    }
    const message = locksMessage(loaded.locks);
    if (message === loaded.sent) return;
    loaded.sent = message;
    // This instance's connections only: each instance tells its own.
    for (const connection of loaded.document.getConnections()) connection.sendStateless(message);
  }

  private publish(documentName: string): void {
    // While Redis is away the message waits in ioredis's queue; instances that missed one read again when Redis is back.
    this.redis?.publish(CHANNEL, JSON.stringify({ instance: this.instance, name: documentName })).catch((error: unknown) => {
      this.log.warn({ err: error, code: 'locks-not-published', document: documentName }, 'could not tell the other instances of a lock change');
    });
  }

  /** Hears the other instances' lock changes; after Redis was away, reads every loaded document's locks again (changes may have been missed). */
  private subscribe(redis: Redis): Redis {
    const subscriber = redis.duplicate();
    let missed = false;
    // The connection it duplicates reports Redis going away (connectRedis).
    subscriber.on('error', () => {});
    subscriber.on('close', () => {
      missed = true;
    });
    subscriber.on('ready', () => {
      if (!missed) return;
      missed = false;
      for (const name of this.loaded.keys()) this.refresh(name);
    });
    subscriber.on('message', (_channel: string, text: string) => {
      const change = parseChange(text);
      if (change && change.instance !== this.instance) this.refresh(change.name);
    });
    subscriber.subscribe(CHANNEL).catch((error: unknown) => {
      this.log.warn({ err: error, code: 'locks-not-subscribed', channel: CHANNEL }, 'could not subscribe to other instances\' lock changes');
    });
    return subscriber;
  }
}

/** `line:<id>`, `section:<id>` (a member of a collection that names its members) or `field:<key>` (a header field or text root); `bad-request` otherwise. */
function checkTarget(document: DocumentName, target: string): void {
  const { layout } = kindOf(document.kind);
  const separator = target.indexOf(':');
  if (separator > 0) {
    const prefix = target.slice(0, separator);
    const rest = target.slice(separator + 1);
    if (prefix === 'field' && (Object.hasOwn(layout.header.fields, rest) || layout.texts.includes(rest))) return;
    const members = Object.values(layout.collections).flatMap((collection) => (collection.member ? [collection.member] : []));
    if (members.includes(prefix) && memberId.safeParse(rest).success) return;
  }
  const members = Object.values(layout.collections).flatMap((collection) => (collection.member ? [`${collection.member}:<id>`] : []));
  throw new ConcordError('bad-request', `the target must be ${[...members, 'field:<key>'].join(', ')} (a ${document.kind} field: ${[...Object.keys(layout.header.fields), ...layout.texts].join(', ')})`);
}

function locksMessage(locks: readonly Lock[]): string {
  return JSON.stringify({ type: 'concord:locks', locks });
}

function lockedBy(holder: LockRow): ConcordError {
  return new ConcordError('locked', `${holder.target} is locked by ${holder.user_name ?? holder.user_id} until ${iso(holder.until)}`, { details: holderDetails(holder) });
}

function holderDetails(holder: LockRow) {
  return { target: holder.target, holder: { userId: holder.user_id, name: holder.user_name } };
}

function lockOf(row: LockRow): Lock {
  return { target: row.target, userId: row.user_id, name: row.user_name, until: iso(row.until) };
}

function iso(time: string | Date): string {
  return new Date(time).toISOString();
}

function parseChange(text: string): z.infer<typeof changeMessage> | null {
  try {
    return changeMessage.parse(JSON.parse(text));
  } catch {
    return null;
  }
}
