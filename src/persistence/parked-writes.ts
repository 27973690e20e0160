import type { Connection, Document } from '@hocuspocus/server';
import * as Y from 'yjs';
import type { ConcordError } from '../errors.ts';
import type { UpdateReach } from '../protocol.ts';

/** The settings that bound what one document holds parked. */
export interface ParkingLimits {
  /** MAX_PENDING_BYTES: most bytes of parked writes per document. */
  maxBytes: number;
  /** MAX_PENDING_WRITES: most parked writes per document (each makes Yjs merge what is pending). */
  maxWrites: number;
  /** MAX_PENDING_AGE_MS: longest a parked write waits for what it depends on. */
  maxAgeMs: number;
}

export type ParkingLimit = 'MAX_PENDING_BYTES' | 'MAX_PENDING_WRITES' | 'MAX_PENDING_AGE_MS';

/** Why parked writes were dropped: a bound, or the rules refused what releasing them would change. */
export type DropReason = ParkingLimit | ConcordError;

/** What Yjs holds pending in a document (its store's pendingStructs and pendingDs, as Yjs keeps them). */
interface Pending {
  structs: { missing: Map<number, number>; update: Uint8Array } | null;
  ds: Uint8Array | null;
}

/**
 * What a parked deleted range counts against MAX_PENDING_BYTES: parked deletes
 * are read again after every later write of the document (ParkedWrites.hold),
 * about 70 ns a range here, against a few bytes each on the wire.
 */
export const PARKED_DELETE_RANGE_BYTES = 64;

/** What a write counts against MAX_PENDING_BYTES while it is parked. */
export function parkedBytes(update: Uint8Array, reach: UpdateReach): number {
  return update.byteLength + PARKED_DELETE_RANGE_BYTES * reach.deleteRanges;
}

/** A client write Yjs parked (pending structs) because it depends on changes the document lacks. */
export interface ParkedWrite {
  reach: UpdateReach;
  bytes: number;
  parkedAt: number;
  /** True once its content is applied and committed; false when it was dropped. */
  settle(outcome: Promise<boolean> | boolean): void;
}

/**
 * Whose content a held set is: the connection whose write Yjs parked it from
 * (judged as its user when released), or null for content a relay or the log
 * parked (judged where it was written, released as relayed content). Server-side
 * edits are drafted on the live document and applied at once: they never park.
 */
export type ParkedBy = Connection | null;

interface DocumentParking {
  document: Document;
  /** Per connection, in arrival order (a client's later writes depend on its earlier ones). */
  byConnection: Map<Connection, ParkedWrite[]>;
  bytes: number;
  writes: number;
  ageTimer?: NodeJS.Timeout;
  /** What Yjs would hold pending, kept out of the document (hold), by whose transaction parked it. */
  held: Map<ParkedBy, Pending>;
}

export interface ParkingCallbacks {
  /** Whose share of the document's bounds a connection's parked writes count in: its user's. */
  userOf(connection: Connection): string;
  /** Settles once everything of the document queued so far is committed. */
  committedSoFar(document: string): Promise<unknown>;
  /** A connection's parked writes were dropped (it may have closed since). */
  dropped(document: Document, connection: Connection, reason: DropReason): void;
}

/**
 * Keeps what Yjs would hold pending per document (updates whose dependencies
 * have not arrived) out of the document, so that no encoding of it (a sync
 * answer to a client or another instance, a copy) carries it and no later
 * update releases it unjudged (Yjs retries what it holds on every update):
 * each set is released only once what it waits for is there, judged as the
 * user whose write parked it (the caller's part: nextRelease,
 * restoreForRelease). Bounds it (checked after every later change of the
 * document, its cost falls on every writer of the document) and answers the
 * writes parked there: "applied" once what they depend on arrives and their
 * content is committed, "not applied" when they are dropped. The bounds are
 * the document's (MAX_PENDING_BYTES, MAX_PENDING_WRITES) and each write's
 * (MAX_PENDING_AGE_MS); what passing one drops is the parked content of the
 * user holding the most (shed), or of the connection whose write waited too
 * long (none of it was acknowledged).
 * A connection's parked content goes when it closes: nobody is left to answer,
 * its user may no longer be allowed to write, and its client sends the
 * content again when it reconnects.
 */
export class ParkedWrites {
  /** By document name. */
  private readonly documents = new Map<string, DocumentParking>();
  private readonly limits: ParkingLimits;
  private readonly callbacks: ParkingCallbacks;

  constructor(limits: ParkingLimits, callbacks: ParkingCallbacks) {
    this.limits = limits;
    this.callbacks = callbacks;
  }

  /**
   * Makes room for one more parked write of `bytes` from `connection` (see
   * shed); the bound it would pass, if it is to be refused.
   */
  makeRoom(document: Document, connection: Connection, bytes: number): ParkingLimit | null {
    return this.shed(document, connection, { bytes, writes: 1 });
  }

  /** A write was parked by Yjs; the promise settles true once it is applied and committed, false if it is dropped. */
  park(document: Document, connection: Connection, write: Pick<ParkedWrite, 'reach' | 'bytes'>): Promise<boolean> {
    // Closed meanwhile (Hocuspocus still applies the writes queued before): it went with its connection (connectionClosed).
    if (!document.hasConnection(connection)) return Promise.resolve(false);
    const parking = this.parkingOf(document) ?? this.startParking(document);
    const { bytes } = write;
    const promise = new Promise<boolean>((settle) => {
      const writes = parking.byConnection.get(connection) ?? [];
      writes.push({ ...write, parkedAt: Date.now(), settle });
      parking.byConnection.set(connection, writes);
    });
    parking.bytes += bytes;
    parking.writes++;
    // A write expected to apply whole that Yjs parked all the same: the bounds still hold. (Writes that made room
    // at the same time may leave the document a little past a bound: the next one to park sheds it.)
    const refused = this.shed(document, connection, { bytes: 0, writes: 0 });
    if (refused) this.dropParkedBy(document, connection, refused);
    else this.watchAge(document, parking);
    return promise;
  }

  /**
   * After every transaction of the document: what Yjs parked in it (the
   * document holds nothing parked before, so it is the transaction's own) is
   * taken out and kept as `parkedBy`'s. True when some set kept can now be
   * released (what it waits for is there): the caller releases it.
   */
  hold(document: Document, parkedBy: ParkedBy): boolean {
    const pending = takePending(document);
    // A closed connection's content goes as its parked writes did (connectionClosed).
    if ((pending.structs || pending.ds) && (parkedBy === null || document.hasConnection(parkedBy))) {
      const parking = this.parkingOf(document) ?? this.startParking(document);
      parking.held.set(parkedBy, merged(parking.held.get(parkedBy), pending));
    }
    return this.nextRelease(document) !== undefined;
  }

  /** Whose held content can be released now, if any: a connection's (to be judged as its user) or null. */
  nextRelease(document: Document): ParkedBy | undefined {
    for (const [parkedBy, pending] of this.parkingOf(document)?.held ?? []) if (releasable(document, pending)) return parkedBy;
    return undefined;
  }

  /**
   * Puts `parkedBy`'s held content back into the document as Yjs holds it,
   * for the next update to release, when some of it can be released; false
   * when it cannot (released or dropped meanwhile). What stays parked is taken
   * out again by hold, after that update's transaction.
   */
  restoreForRelease(document: Document, parkedBy: ParkedBy): boolean {
    const pending = this.parkingOf(document)?.held.get(parkedBy);
    if (!pending || !releasable(document, pending)) return false;
    this.parkingOf(document)!.held.delete(parkedBy);
    document.store.pendingStructs = pending.structs;
    document.store.pendingDs = pending.ds;
    return true;
  }

  /**
   * After a change of the document, or a release: parked writes whose content
   * is now in it are answered once everything of the document queued so far
   * is committed. That covers every way their content gets in: their judged
   * release and a client's write are logged here, the log's own updates are
   * logged, and relayed content is followed until its instance logs it
   * (committedSoFar). A connection whose held content can be released now is
   * answered by that release: a parked deletion's range may be in the
   * document, the deletion not yet applied.
   */
  settleHeld(document: Document): void {
    const parking = this.parkingOf(document);
    if (!parking) return;
    for (const [connection, writes] of parking.byConnection) {
      const held = parking.held.get(connection);
      if (held && releasable(document, held)) continue;
      // A connection's later writes wait for its first one: checking stops there.
      while (writes.length > 0 && writes[0]!.reach.heldBy(document)) {
        const write = writes.shift()!;
        parking.bytes -= write.bytes;
        parking.writes--;
        write.settle(this.callbacks.committedSoFar(document.name).then(() => true));
      }
      if (writes.length === 0) parking.byConnection.delete(connection);
    }
    this.forgetIfEmpty(parking);
  }

  /**
   * Drops what one connection's writes parked (a bound was passed, or the
   * rules refused releasing it): its writes are answered "not applied", and
   * its sender told why. Between transactions the document's store holds
   * nothing parked; what was put back for a release is taken out again.
   */
  dropParkedBy(document: Document, connection: Connection, reason: DropReason): void {
    const parking = this.parkingOf(document);
    if (!parking) return;
    takePending(document);
    // Closed meanwhile (a release waited for its judge), it held nothing any more: nobody to tell.
    if (this.takeOut(parking, connection)) this.callbacks.dropped(document, connection, reason);
  }

  /** The connection closed: what its writes parked goes, and nobody is told (see the class). */
  connectionClosed(document: Document, connection: Connection): void {
    const parking = this.parkingOf(document);
    if (parking) this.takeOut(parking, connection);
  }

  /** Nothing is parked in the document any more, or it was unloaded. */
  forget(name: string): void {
    clearTimeout(this.documents.get(name)?.ageTimer);
    this.documents.delete(name);
  }

  /**
   * While the document, with `extra` more from `connection`, would pass
   * MAX_PENDING_BYTES or MAX_PENDING_WRITES, the user holding the most of
   * what that bound counts (over all their connections) loses their parked
   * writes: whoever fills the document's bound, with one connection or many,
   * cannot make a user holding less be refused. The bound when the most is
   * `connection`'s user's, `extra` counted (ties too): its write is refused.
   */
  private shed(document: Document, connection: Connection, extra: { bytes: number; writes: number }): ParkingLimit | null {
    for (;;) {
      const parking = this.parkingOf(document);
      const exceeded = this.beyond((parking?.bytes ?? 0) + extra.bytes, (parking?.writes ?? 0) + extra.writes);
      if (!exceeded || !parking) return exceeded;
      const shares = sharesByUser(parking, this.callbacks.userOf);
      const writer = this.callbacks.userOf(connection);
      let most = countedBy(exceeded, shares.get(writer) ?? { bytes: 0, writes: 0 }) + countedBy(exceeded, extra);
      let largest: Connection[] | undefined;
      for (const [user, share] of shares) {
        if (user !== writer && countedBy(exceeded, share) > most) [largest, most] = [share.connections, countedBy(exceeded, share)];
      }
      if (!largest) return exceeded;
      for (const holder of largest) this.dropParkedBy(document, holder, exceeded);
    }
  }

  /**
   * Removes a connection's held content and parked writes; its writes are
   * settled "not applied" (the socket's gate sends that answer only while the
   * connection is open). False when it held nothing.
   */
  private takeOut(parking: DocumentParking, connection: Connection): boolean {
    const heldAny = parking.held.delete(connection) || parking.byConnection.has(connection);
    for (const write of parking.byConnection.get(connection) ?? []) {
      parking.bytes -= write.bytes;
      parking.writes--;
      write.settle(false);
    }
    parking.byConnection.delete(connection);
    this.forgetIfEmpty(parking);
    return heldAny;
  }

  private forgetIfEmpty(parking: DocumentParking): void {
    if (parking.byConnection.size === 0 && parking.held.size === 0) this.forget(parking.document.name);
  }

  private beyond(bytes: number, writes: number): ParkingLimit | null {
    if (bytes > this.limits.maxBytes) return 'MAX_PENDING_BYTES';
    if (writes > this.limits.maxWrites) return 'MAX_PENDING_WRITES';
    return null;
  }

  private parkingOf(document: Document): DocumentParking | undefined {
    const parking = this.documents.get(document.name);
    return parking?.document === document ? parking : undefined;
  }

  private startParking(document: Document): DocumentParking {
    const parking: DocumentParking = { document, byConnection: new Map(), bytes: 0, writes: 0, held: new Map() };
    this.documents.set(document.name, parking);
    return parking;
  }

  /** Drops a connection's parked content once its oldest parked write is older than MAX_PENDING_AGE_MS; one timer per document, for the oldest. */
  private watchAge(document: Document, parking: DocumentParking): void {
    if (parking.ageTimer || parking.byConnection.size === 0) return;
    const oldest = Math.min(...[...parking.byConnection.values()].map((writes) => writes[0]!.parkedAt));
    parking.ageTimer = setTimeout(() => {
      parking.ageTimer = undefined;
      if (this.parkingOf(document) !== parking) return;
      for (const [connection, writes] of parking.byConnection) {
        if (Date.now() - writes[0]!.parkedAt >= this.limits.maxAgeMs) this.dropParkedBy(document, connection, 'MAX_PENDING_AGE_MS');
      }
      if (this.parkingOf(document) === parking) this.watchAge(document, parking);
    }, Math.max(oldest + this.limits.maxAgeMs - Date.now(), 0));
    parking.ageTimer.unref();
  }
}

/** What each user's connections hold parked. */
function sharesByUser(parking: DocumentParking, userOf: (connection: Connection) => string) {
  const shares = new Map<string, { bytes: number; writes: number; connections: Connection[] }>();
  for (const [connection, writes] of parking.byConnection) {
    const user = userOf(connection);
    const share = shares.get(user) ?? { bytes: 0, writes: 0, connections: [] };
    share.bytes += writes.reduce((sum, write) => sum + write.bytes, 0);
    share.writes += writes.length;
    share.connections.push(connection);
    shares.set(user, share);
  }
  return shares;
}

/** What a document bound counts of some parked writes. */
function countedBy(limit: ParkingLimit, parked: { bytes: number; writes: number }): number {
  return limit === 'MAX_PENDING_BYTES' ? parked.bytes : parked.writes;
}

/** Takes what Yjs holds pending out of the document. */
function takePending(document: Document): Pending {
  const pending = { structs: document.store.pendingStructs, ds: document.store.pendingDs };
  document.store.pendingStructs = null;
  document.store.pendingDs = null;
  return pending;
}

/** Two sets of pending content as one, as Yjs merges what it parks (updates in its V2 encoding, each client's lowest missing clock). */
function merged(a: Pending | undefined, b: Pending): Pending {
  if (!a) return b;
  const structs =
    a.structs && b.structs
      ? {
          missing: new Map([...b.structs.missing, ...[...a.structs.missing].filter(([client, clock]) => clock < (b.structs!.missing.get(client) ?? Infinity))]),
          update: Y.mergeUpdatesV2([a.structs.update, b.structs.update]),
        }
      : (a.structs ?? b.structs);
  const ds = a.ds && b.ds ? Y.mergeUpdatesV2([a.ds, b.ds]) : (a.ds ?? b.ds);
  return { structs, ds };
}

/** Whether Yjs would release some of `pending` at the document's next update: a clock it waits for, or content a deletion names, is now there. */
function releasable(document: Document, pending: Pending): boolean {
  const has = (client: number, clock: number) => clock < Y.getState(document.store, client);
  if ([...(pending.structs?.missing ?? [])].some(([client, clock]) => has(client, clock))) return true;
  if (!pending.ds) return false;
  return [...Y.decodeUpdateV2(pending.ds).ds.clients].some(([client, ranges]) => ranges.some(({ clock }) => has(client, clock)));
}
