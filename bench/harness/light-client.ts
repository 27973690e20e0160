import { MessageType } from '@hocuspocus/server';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { WebSocket } from 'ws';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import { now } from './clock.ts';

// The provider version a light client announces in its auth message (the server only records it).
const PROVIDER_VERSION = '4.8.0';
// As y-protocols' Awareness: a state not renewed for 30 s is dropped by the others, so a provider renews it
// at the first of its checks (every 3 s, on a timer of its own) that comes 15 s or more after its last state.
const AWARENESS_RENEW_MS = 15_000;
const AWARENESS_CHECK_MS = 3_000;

/**
 * When a provider whose checks fall at `checkPhase` in every 3 s renews a
 * state it sent at `sentAt`. Each light client keeps a phase of its own, as
 * each provider has a timer of its own.
 */
export function awarenessRenewalAt(sentAt: number, checkPhase: number): number {
  return checkPhase + Math.ceil((sentAt + AWARENESS_RENEW_MS - checkPhase) / AWARENESS_CHECK_MS) * AWARENESS_CHECK_MS;
}

// Auth message subtypes (@hocuspocus/common): a token (either way), a refusal; "authenticated" needs no answer.
const AUTH_TOKEN = 0;
const AUTH_PERMISSION_DENIED = 1;
// The transaction origin of this client's own edits, so that only they are sent.
const LOCAL = Symbol('local edit');

/** What a client saw arrive from the others (its own echoes are left out). */
export interface Receptions {
  /** A Yjs update from `client` covering its clocks [clock, clock + length) arrived `at`. */
  update(client: number, clock: number, length: number, at: number): void;
  /**
   * Awareness state number `clock + length - 1` of `client` arrived `at`; it
   * stands for the `length` states since the last one this client saw, which
   * the server collapsed into it (a cursor move overtaken by the next).
   */
  awareness(client: number, clock: number, length: number, at: number): void;
}

/** One edit or awareness change as its sender saw it leave: what a reception is matched on. */
export interface Sent {
  client: number;
  clock: number;
  at: number;
}

export interface LightClientOptions {
  url: string;
  document: string;
  token: string;
  /** The first awareness state (a provider always has one; `user` etc. per the presence contract). */
  awareness: Record<string, unknown>;
  receptions?: Receptions;
  /** Apply every update that arrives to `doc`, as a provider does (the load clients only need the first sync). */
  applyUpdates?: boolean;
  /** Called with each acknowledgement of a measured write: its latency in ms. */
  onAcknowledged?: (latencyMs: number) => void;
  timeoutMs?: number;
}

/**
 * A Hocuspocus client at the protocol level: the provider's frames (auth with
 * token, y-protocols sync, awareness, SyncStatus acknowledgements) over one
 * `ws` socket per document, without the provider's per-client machinery, so
 * that one load process can drive thousands. It syncs the document once;
 * after that it records what arrives (sender client and clock, and when)
 * instead of applying it, unless `applyUpdates` is set.
 * test/light-client.test.ts checks it against real providers through real servers.
 */
export class LightClient {
  readonly doc = new Y.Doc();
  readonly document: string;
  /** Why the server refused or closed, if it did. */
  readonly refusals: string[] = [];
  private readonly options: LightClientOptions;
  private readonly socket: WebSocket;
  /** Send time of every write not yet acknowledged, oldest first; NaN for writes not measured. */
  private readonly unacknowledged: number[] = [];
  private awarenessState: Record<string, unknown>;
  private awarenessClock = 0;
  /** Where this client's awareness checks fall in every AWARENESS_CHECK_MS, as a provider's own timer. */
  private readonly awarenessCheckPhase = Math.random() * AWARENESS_CHECK_MS;
  private awarenessRenewalAt = Infinity;
  /** The last awareness clock seen of each other client. */
  private readonly awarenessSeen = new Map<number, number>();
  private synced = false;
  /** When the document's first content (update or sync step 2) arrived before the sync, before it was applied. */
  contentArrivedAt = NaN;
  /** Whether the update the current edit sends has its acknowledgement timed. */
  private measureNext = false;
  private settle: ((error?: Error) => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  closed = false;

  private constructor(options: LightClientOptions) {
    this.options = options;
    this.document = options.document;
    this.awarenessState = options.awareness;
    this.socket = new WebSocket(options.url, { perMessageDeflate: false });
    this.socket.binaryType = 'nodebuffer';
    this.doc.on('update', (update: Uint8Array, origin: unknown) => origin === LOCAL && this.sendUpdate(update));
  }

  /** Connects, authenticates and syncs; resolves once the document's content has arrived. */
  static connect(options: LightClientOptions): Promise<LightClient> {
    const client = new LightClient(options);
    const timeoutMs = options.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => client.settle?.(new Error(`${options.document}: not synced after ${timeoutMs} ms`)), timeoutMs);
      client.settle = (error) => {
        clearTimeout(timer);
        client.settle = undefined;
        if (!error) return resolve(client);
        client.socket.terminate();
        reject(error);
      };
      client.socket.on('open', () => client.start());
      client.socket.on('message', (data: Buffer) => client.receive(data));
      client.socket.on('error', (error) => client.settle?.(error));
      client.socket.on('close', (code, reason) => {
        client.closed = true;
        if (code !== 1000) client.refusals.push(`closed ${code} ${reason.toString()}`);
        client.settle?.(new Error(`${options.document}: closed (${code} ${reason.toString()}) before it synced`));
        client.releaseIdleWaiters();
      });
    });
  }

  get clientId(): number {
    return this.doc.clientID;
  }

  /** Writes sent and not yet acknowledged. */
  get pending(): number {
    return this.unacknowledged.length;
  }

  /**
   * Makes a local change and sends it as one update; returns what identifies
   * it at the receivers. `measured`: its acknowledgement is timed.
   */
  edit(change: (doc: Y.Doc) => void, measured = false): Sent {
    const clock = Y.getState(this.doc.store, this.doc.clientID);
    const at = now();
    this.measureNext = measured;
    this.doc.transact(() => change(this.doc), LOCAL);
    return { client: this.doc.clientID, clock, at };
  }

  /** Sets fields of this client's awareness state and sends it, as a provider does on a cursor move. */
  setAwareness(fields: Record<string, unknown>): Sent {
    this.awarenessState = { ...this.awarenessState, ...fields };
    return this.sendAwareness();
  }

  /**
   * A provider renews its awareness state at the first check of its own timer
   * 15 s or more after its last state (every 15 s while nothing else changes
   * it), and the server counts that as the socket being alive. The next
   * renewal counts from when this one was due, not from when the load process
   * got to it: a provider's own timer is not held up by the thousand others in
   * a busy load process, and renewals sent late together must not stay
   * together at every round. A process held up for longer than 15 s owes one.
   */
  renewAwarenessIfDue(at: number): void {
    const due = this.awarenessRenewalAt;
    if (at < due) return;
    this.sendAwareness();
    this.awarenessRenewalAt = awarenessRenewalAt(Math.max(due, at - AWARENESS_RENEW_MS), this.awarenessCheckPhase);
  }

  /** Resolves once every write sent so far is acknowledged (or the socket closed). */
  acknowledged(): Promise<void> {
    if (this.unacknowledged.length === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close(1000);
    });
  }

  /** As the provider: the token, then sync step 1 and the awareness state without waiting for the answer. */
  private start(): void {
    this.sendToken();
    this.send((encoder) => {
      encoding.writeVarUint(encoder, MessageType.Sync);
      syncProtocol.writeSyncStep1(encoder, this.doc);
    });
    this.sendAwareness();
  }

  private sendUpdate(update: Uint8Array): void {
    this.unacknowledged.push(this.measureNext ? now() : NaN);
    this.send((encoder) => {
      encoding.writeVarUint(encoder, MessageType.Sync);
      syncProtocol.writeUpdate(encoder, update);
    });
  }

  /** y-protocols' awareness update for one client: count, then clientID, clock and the state as JSON. */
  private sendAwareness(): Sent {
    const at = now();
    this.awarenessClock++;
    this.awarenessRenewalAt = awarenessRenewalAt(at, this.awarenessCheckPhase);
    this.send((encoder) => {
      encoding.writeVarUint(encoder, MessageType.Awareness);
      const update = encoding.createEncoder();
      encoding.writeVarUint(update, 1);
      encoding.writeVarUint(update, this.doc.clientID);
      encoding.writeVarUint(update, this.awarenessClock);
      encoding.writeVarString(update, JSON.stringify(this.awarenessState));
      encoding.writeVarUint8Array(encoder, encoding.toUint8Array(update));
    });
    return { client: this.doc.clientID, clock: this.awarenessClock, at };
  }

  private send(write: (encoder: encoding.Encoder) => void): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    const encoder = encoding.createEncoder();
    encoding.writeVarString(encoder, this.document);
    write(encoder);
    this.socket.send(encoding.toUint8Array(encoder));
  }

  private receive(data: Buffer): void {
    const at = now();
    const decoder = decoding.createDecoder(data);
    decoding.readVarString(decoder);
    switch (decoding.readVarUint(decoder)) {
      case MessageType.Sync:
        return this.receiveSync(decoder, at);
      case MessageType.Awareness:
        return this.receiveAwareness(decoding.readVarUint8Array(decoder), at);
      case MessageType.SyncStatus:
        return this.receiveAcknowledgement(decoding.readVarUint(decoder) === 1, at);
      case MessageType.Auth:
        return this.receiveAuth(decoder);
      case MessageType.Stateless:
        return this.receiveStateless(decoding.readVarString(decoder));
      case MessageType.CLOSE:
        this.refusals.push(decoding.readVarString(decoder));
        return;
    }
  }

  private receiveSync(decoder: decoding.Decoder, at: number): void {
    const step = decoding.readVarUint(decoder);
    if (step === syncProtocol.messageYjsSyncStep1) {
      // The server's state vector: answer with what it lacks (a write, acknowledged like any other).
      this.unacknowledged.push(NaN);
      const stateVector = decoding.readVarUint8Array(decoder);
      this.send((encoder) => {
        encoding.writeVarUint(encoder, MessageType.Sync);
        syncProtocol.writeSyncStep2(encoder, this.doc, stateVector);
      });
      return;
    }
    const update = decoding.readVarUint8Array(decoder);
    // Content comes in the sync answer, or before it when Concord sends a long document's stored content ahead.
    if (!this.synced && Number.isNaN(this.contentArrivedAt)) this.contentArrivedAt = at;
    if (!this.synced || this.options.applyUpdates) Y.applyUpdate(this.doc, update, this);
    if (!this.synced && step === syncProtocol.messageYjsSyncStep2) {
      this.synced = true;
      this.settle?.();
      return;
    }
    if (this.options.receptions) this.recordUpdate(update, at);
  }

  private recordUpdate(update: Uint8Array, at: number): void {
    // Hocuspocus merges what arrives in one event-loop turn into one broadcast: one range per sender.
    const ranges = new Map<number, { clock: number; end: number }>();
    for (const struct of Y.decodeUpdate(update).structs) {
      const { client, clock } = struct.id;
      if (client === this.doc.clientID || struct instanceof Y.Skip) continue;
      const range = ranges.get(client);
      if (!range) ranges.set(client, { clock, end: clock + struct.length });
      else range.end = Math.max(range.end, clock + struct.length);
    }
    for (const [client, { clock, end }] of ranges) this.options.receptions!.update(client, clock, end - clock, at);
  }

  private receiveAwareness(update: Uint8Array, at: number): void {
    const receptions = this.options.receptions;
    if (!receptions) return;
    const decoder = decoding.createDecoder(update);
    for (let count = decoding.readVarUint(decoder); count > 0; count--) {
      const client = decoding.readVarUint(decoder);
      const clock = decoding.readVarUint(decoder);
      decoding.readVarUint8Array(decoder); // the state's JSON, not needed to match it
      const seen = this.awarenessSeen.get(client);
      if (client === this.doc.clientID || (seen !== undefined && clock <= seen)) continue;
      this.awarenessSeen.set(client, clock);
      // The first state seen of a client stands for itself only: what came before this client joined was never due here.
      const from = seen === undefined ? clock : seen + 1;
      receptions.awareness(client, from, clock - from + 1, at);
    }
  }

  private receiveAcknowledgement(applied: boolean, at: number): void {
    const sentAt = this.unacknowledged.shift();
    if (!applied) this.refusals.push('a write was answered "not applied"');
    else if (sentAt !== undefined && !Number.isNaN(sentAt)) this.options.onAcknowledged?.(at - sentAt);
    if (this.unacknowledged.length === 0) this.releaseIdleWaiters();
  }

  private receiveAuth(decoder: decoding.Decoder): void {
    const type = decoding.readVarUint(decoder);
    if (type === AUTH_PERMISSION_DENIED) {
      const reason = decoding.readVarString(decoder);
      this.refusals.push(reason);
      this.settle?.(new Error(`${this.document}: authentication refused: ${reason}`));
    } else if (type === AUTH_TOKEN) {
      // The server asks for a fresh token before the old one expires.
      this.sendToken();
    }
  }

  private sendToken(): void {
    this.send((encoder) => {
      encoding.writeVarUint(encoder, MessageType.Auth);
      encoding.writeVarUint(encoder, AUTH_TOKEN);
      encoding.writeVarString(encoder, this.options.token);
      encoding.writeVarString(encoder, PROVIDER_VERSION);
    });
  }

  private receiveStateless(payload: string): void {
    if (payload.includes('concord:refused')) this.refusals.push(payload);
  }

  private releaseIdleWaiters(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((resolve) => resolve());
  }
}
