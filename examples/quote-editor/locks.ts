/**
 * The locks of one replica, over the WebSocket protocol (docs/protocol.md,
 * Locks): the page holds a lock on the line the user is in (`concord:lock`,
 * renewed at half its lease while the user stays, `concord:unlock` on leaving),
 * and the server tells every client of the document the locks it holds
 * (`concord:locks`) whenever they change, so nothing is polled.
 */
import type { HocuspocusProvider } from '@hocuspocus/provider';
import type { Refusal } from '../shared/session.ts';

/** A lock as the server lists it (src/rules/locks.ts). */
export interface Lock {
  target: string;
  userId: string;
  name: string | null;
  until: string;
}

/** The lease asked for; the page renews at half of it, so a closed tab's lock lapses within it. */
const LEASE_SECONDS = 30;

/** The locks of one session's document: those the server lists, and the one this page holds. */
export class Locks {
  private held: readonly Lock[] = [];
  /** The target this page wants locked while the user is in it, and the timer renewing it. */
  private wanted: { target: string; renewal: ReturnType<typeof setInterval> } | null = null;
  /** Requests sent and not yet seen through in a `concord:locks` list: a refusal of one is this page's to show. */
  private readonly pending = new Map<string, 'lock' | 'unlock'>();
  /** The provider of the bound replica: requests go there. */
  private provider: HocuspocusProvider | null = null;
  private readonly userId: string;
  private readonly changed: () => void;

  /** `changed` is called whenever the listed locks change. */
  constructor(userId: string, changed: () => void) {
    this.userId = userId;
    this.changed = changed;
  }

  /** A replica is bound: requests go through its provider. */
  attach(provider: HocuspocusProvider): void {
    this.provider = provider;
  }

  /**
   * The replica is unbound: its lock is released, and what the server listed
   * for it forgotten (a replica loaded next is told the locks when it connects).
   */
  detach(): void {
    this.release();
    this.provider = null;
    this.held = [];
    this.pending.clear();
  }

  /** The lock on `target` held by another user, if any. */
  heldByOther(target: string): Lock | undefined {
    return this.held.find((lock) => lock.target === target && lock.userId !== this.userId);
  }

  /** Whether this user holds the lock on `target`. */
  heldByMe(target: string): boolean {
    return this.held.some((lock) => lock.target === target && lock.userId === this.userId);
  }

  /** Holds a lock on `target` (null: none) from now on, releasing the one held before. */
  want(target: string | null): void {
    if (this.wanted?.target === target) return;
    this.release();
    if (target === null) return;
    const renew = () => this.send({ type: 'concord:lock', target, ttlSeconds: LEASE_SECONDS });
    this.wanted = { target, renewal: setInterval(renew, (LEASE_SECONDS / 2) * 1000) };
    renew();
  }

  /** A `concord:locks` message from the server: the document's locks now. */
  receive(message: Record<string, unknown>): void {
    if (message.type !== 'concord:locks' || !Array.isArray(message.locks)) return;
    this.held = message.locks as Lock[];
    for (const [target, request] of this.pending) if (this.heldByMe(target) === (request === 'lock')) this.pending.delete(target);
    this.changed();
  }

  /**
   * Whether a refusal answers one of this page's lock requests (it names the
   * target and no fields: a refused write names the fields it touched). A
   * refused lock is not asked for again until the user comes back to it.
   */
  claim(refusal: Refusal): boolean {
    if (!refusal.target || refusal.fields?.length || !this.pending.has(refusal.target)) return false;
    this.pending.delete(refusal.target);
    if (this.wanted?.target === refusal.target) {
      clearInterval(this.wanted.renewal);
      this.wanted = null;
    }
    return true;
  }

  /** Releases the wanted lock and stops renewing it (the server also releases a leaving user's locks). */
  release(): void {
    if (!this.wanted) return;
    const { target, renewal } = this.wanted;
    clearInterval(renewal);
    this.wanted = null;
    // Someone else's lock is not this page's to release (an admin's unlock would break it).
    if (!this.heldByOther(target)) this.send({ type: 'concord:unlock', target });
  }

  private send(request: { type: 'concord:lock' | 'concord:unlock'; target: string; ttlSeconds?: number }): void {
    if (!this.provider) return;
    this.pending.set(request.target, request.type === 'concord:lock' ? 'lock' : 'unlock');
    this.provider.sendStateless(JSON.stringify(request));
  }
}
