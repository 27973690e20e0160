/**
 * The locks of one session's document, over the WebSocket protocol
 * (docs/locks.md): the page holds a lock on the line the user is in
 * (`concord:lock`, renewed at half its lease while the user stays there,
 * `concord:unlock` once they leave), and the server tells every client the
 * document's locks whenever they change (`concord:locks`), so nothing is polled.
 *
 * One request per target is in flight at a time: the server answers each with
 * a new `concord:locks` list or a refusal, and may finish two requests sent
 * back to back in either order, so an unlock waits for the lock before it.
 */
import type { HocuspocusProvider } from '@hocuspocus/provider';
import type { Refusal } from '../shared/session.ts';

/** A lock as the server lists it. */
export interface Lock {
  target: string;
  userId: string;
  name: string | null;
  until: string;
}

/** The lease asked for; the page renews at half of it, so a closed tab's lock lapses within it. */
const LEASE_SECONDS = 30;

export class Locks {
  private held: readonly Lock[] = [];
  /** The target the user is in, which this page wants locked (null: none). */
  private wanted: string | null = null;
  /** A wanted target whose lock the server refused: not asked again until the user comes back to it. */
  private refused: string | null = null;
  /** Targets this page has asked to lock and not yet seen released: only these it unlocks. */
  private readonly taken = new Set<string>();
  /** Requests sent and not yet answered, by target. */
  private readonly inFlight = new Map<string, 'lock' | 'unlock'>();
  /** The provider of the bound replica (requests go there), and the timer renewing the lock while it is bound. */
  private provider: HocuspocusProvider | null = null;
  private renewal: ReturnType<typeof setInterval> | undefined;
  private readonly userId: string;
  private readonly changed: () => void;
  private readonly showRefusal: (refusal: Refusal) => void;

  /** `changed` is called whenever the listed locks change; `showRefusal` when a lock this page asked for is refused. */
  constructor(userId: string, changed: () => void, showRefusal: (refusal: Refusal) => void) {
    this.userId = userId;
    this.changed = changed;
    this.showRefusal = showRefusal;
  }

  /** A replica is bound: requests go through its provider. */
  attach(provider: HocuspocusProvider): void {
    this.provider = provider;
    this.renewal = setInterval(() => this.renew(), (LEASE_SECONDS / 2) * 1000);
  }

  /**
   * The replica is unbound: its lock is released (the server also releases a
   * leaving user's locks), and what the server listed for it forgotten (the
   * next replica is told the locks as it connects).
   */
  detach(): void {
    this.want(null);
    clearInterval(this.renewal);
    this.provider = null;
    this.held = [];
    this.taken.clear();
    this.inFlight.clear();
  }

  /** The lock on `target` held by another user, if any. */
  heldByOther(target: string): Lock | undefined {
    return this.held.find((lock) => lock.target === target && lock.userId !== this.userId);
  }

  /** Whether this user holds the lock on `target`. */
  heldByMe(target: string): boolean {
    return this.held.some((lock) => lock.target === target && lock.userId === this.userId);
  }

  /** The user is in `target` (null: in no line): lock it, and release the one they left. */
  want(target: string | null): void {
    if (this.wanted === target) return;
    this.wanted = target;
    this.refused = null;
    this.settle();
  }

  /** A stateless message from the server: `concord:locks` is the document's locks now. */
  receive(message: Record<string, unknown>): void {
    if (message.type !== 'concord:locks' || !Array.isArray(message.locks)) return;
    this.held = message.locks as Lock[];
    for (const [target, request] of this.inFlight) if (this.heldByMe(target) === (request === 'lock')) this.inFlight.delete(target);
    this.settle();
    this.changed();
  }

  /**
   * Whether a refusal answers a lock request: it names a target and no fields
   * (a refused write names the fields it touched). A refused lock is shown; a
   * refused unlock only means there was nothing left to release.
   */
  claim(refusal: Refusal): boolean {
    if (!refusal.target || refusal.fields?.length) return false;
    const request = this.inFlight.get(refusal.target);
    this.inFlight.delete(refusal.target);
    if (request === 'unlock') this.taken.delete(refusal.target);
    if (request === 'lock' && refusal.target === this.wanted) {
      this.refused = refusal.target;
      this.showRefusal(refusal);
    }
    this.settle();
    return true;
  }

  /** Sends what brings the server's locks to what the page wants, one request per target at a time. */
  private settle(): void {
    for (const target of this.taken) {
      if (target === this.wanted || this.inFlight.has(target)) continue;
      if (this.heldByMe(target)) this.send('concord:unlock', target);
      else this.taken.delete(target);
    }
    const target = this.wanted;
    // Asked even if the list says someone else holds it: the list may be a moment old, and the server judges.
    if (target && target !== this.refused && !this.heldByMe(target) && !this.inFlight.has(target)) this.send('concord:lock', target);
  }

  private renew(): void {
    if (this.wanted && this.heldByMe(this.wanted) && !this.inFlight.has(this.wanted)) this.send('concord:lock', this.wanted);
  }

  private send(type: 'concord:lock' | 'concord:unlock', target: string): void {
    if (!this.provider) return;
    this.inFlight.set(target, type === 'concord:lock' ? 'lock' : 'unlock');
    if (type === 'concord:lock') this.taken.add(target);
    this.provider.sendStateless(JSON.stringify(type === 'concord:lock' ? { type, target, ttlSeconds: LEASE_SECONDS } : { type, target }));
  }
}
