import { setTimeout as sleep } from 'node:timers/promises';
import * as Y from 'yjs';
import type { DocumentName } from '../documents/name.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { DocumentStore } from './document-store.ts';

// Relayed content older than this that no live instance is still logging is recovered.
export const RECOVER_AFTER_MS = 3_000;
const FIRST_CHECK_MS = 10;
const MAX_CHECK_INTERVAL_MS = 1_000;

/** The transaction origin of log updates applied to a live document: Hocuspocus's "local", never logged again. */
export const FROM_LOG = { source: 'local', skipStoreHooks: true } as const;

interface Relayed {
  update: Uint8Array;
  receivedAt: number;
  confirm(): void;
  confirmed: Promise<void>;
}

interface Followed {
  document: DocumentName;
  /** The document as the log holds it, up to `seq`. */
  logged: Y.Doc;
  seq: number;
  /** Relayed updates not known to be in the log yet, oldest first. */
  relayed: Relayed[];
  checking: Promise<void> | null;
}

/** Which other instances may still log updates of a document (Redis beacons). */
export interface UnloggedUpdates {
  othersHoldUnlogged(documentName: string): Promise<boolean>;
}

/**
 * With several instances, keeps for each loaded document a copy of what the
 * log holds (seeded at load, brought forward from the log's tail), because an
 * instance's own copy may differ from the log both ways:
 *
 * - It may lack updates other instances logged (Redis was away, or a relay is
 *   still on its way). A client that connects here could then send them again
 *   as its own; so before a client's sync is answered the document is brought
 *   up to the log, and those updates are not logged again.
 * - It may hold relayed updates not logged yet: the relaying instance logs
 *   them, usually a few milliseconds later. Until then they are at risk, so a
 *   client's write is acknowledged only once every relayed update the document
 *   held when the write arrived is in the log (the write may build on it), and
 *   the document stays loaded until then. Relayed content nobody logs (its
 *   instance died first) is logged here, with no author, once no live instance
 *   holds unlogged updates of the document (beacons in Redis); under the
 *   document's row lock, so only one instance does.
 */
export class LogFollower {
  private readonly followed = new Map<string, Followed>();
  private readonly store: DocumentStore;
  private readonly unlogged: UnloggedUpdates;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private closed = false;

  constructor(store: DocumentStore, unlogged: UnloggedUpdates, log: Logger, metrics: Metrics) {
    this.store = store;
    this.unlogged = unlogged;
    this.log = log;
    this.metrics = metrics;
  }

  /** The document was loaded from the log: `state` is the log's document at `seq`. */
  loaded(document: DocumentName, state: Uint8Array, seq: number): void {
    this.forget(document.name);
    const logged = new Y.Doc();
    Y.applyUpdate(logged, state);
    this.followed.set(document.name, { document, logged, seq, relayed: [], checking: null });
  }

  /**
   * Applies to `live` what the log holds that it lacks (updates other
   * instances logged), as not to be logged again; resolves with the seq `live`
   * then holds all of (null: the document is not followed).
   */
  async bringUpToLog(name: string, live: Y.Doc): Promise<number | null> {
    const followed = this.followed.get(name);
    if (!followed) return null;
    await this.caughtUp(followed);
    Y.applyUpdate(live, Y.encodeStateAsUpdate(followed.logged, Y.encodeStateVector(live)), FROM_LOG);
    return followed.seq;
  }

  /** A relayed update brought `update` (what was new here) to the document. */
  relayed(name: string, update: Uint8Array): void {
    const followed = this.followed.get(name);
    if (!followed) return;
    let confirm!: () => void;
    const confirmed = new Promise<void>((resolve) => (confirm = resolve));
    followed.relayed.push({ update, receivedAt: Date.now(), confirm, confirmed });
    followed.checking ??= this.checkUntilLogged(followed);
  }

  /** Settles once everything relayed to the document so far is in the log. */
  logged(name: string): Promise<unknown> {
    const relayed = this.followed.get(name)?.relayed;
    return relayed?.length ? Promise.all(relayed.map((entry) => entry.confirmed)) : Promise.resolve();
  }

  hasUnlogged(name: string): boolean {
    return (this.followed.get(name)?.relayed.length ?? 0) > 0;
  }

  forget(name: string): void {
    this.followed.get(name)?.logged.destroy();
    this.followed.delete(name);
  }

  close(): void {
    this.closed = true;
    for (const name of [...this.followed.keys()]) this.forget(name);
  }

  private async checkUntilLogged(followed: Followed): Promise<void> {
    let wait = FIRST_CHECK_MS;
    while (followed.relayed.length > 0) {
      await sleep(wait);
      if (this.closed || this.followed.get(followed.document.name) !== followed) return;
      let progressed = false;
      try {
        progressed = await this.check(followed);
      } catch (error) {
        this.metrics.persistenceErrors.inc({ operation: 'check-relayed' });
        this.log.warn({ err: error, code: 'relayed-check-failed', document: followed.document.name }, 'could not check that relayed updates are logged; checking again');
      }
      // Checks follow a relaying instance's commits closely, and back off while nothing moves.
      wait = progressed ? FIRST_CHECK_MS : Math.min(wait * 2, MAX_CHECK_INTERVAL_MS);
    }
    followed.checking = null;
  }

  /** Confirms the relayed updates the log now holds, and recovers stale ones nobody is logging; true if any was confirmed. */
  private async check(followed: Followed): Promise<boolean> {
    await this.caughtUp(followed);
    const snapshot = Y.snapshot(followed.logged);
    const waiting = followed.relayed.filter((entry) => {
      if (!Y.snapshotContainsUpdate(snapshot, entry.update)) return true;
      entry.confirm();
      return false;
    });
    const progressed = waiting.length < followed.relayed.length;
    followed.relayed = waiting;
    const stale = waiting.filter((entry) => Date.now() - entry.receivedAt >= RECOVER_AFTER_MS);
    if (stale.length > 0 && !(await this.unlogged.othersHoldUnlogged(followed.document.name))) await this.recover(followed.document, stale);
    return progressed;
  }

  /** Brings the log's copy forward to the log's last update. */
  private async caughtUp(followed: Followed): Promise<void> {
    for (const { seq, update } of await this.store.updatesAfter(followed.document, followed.seq)) {
      Y.applyUpdate(followed.logged, update);
      followed.seq = seq;
    }
  }

  private async recover(document: DocumentName, stale: Relayed[]): Promise<void> {
    const seqs = await this.store.logUnlogged(document, stale.map(({ update, receivedAt }) => ({ update, receivedAt: new Date(receivedAt) })));
    if (seqs.length === 0) return;
    this.metrics.orphansRecovered.inc();
    this.log.warn(
      { code: 'orphan-recovered', document: document.name, seqs },
      'logged relayed content that no live instance logs (the instance that received it stopped first), for the owner of its clientIDs where one is known',
    );
  }
}
