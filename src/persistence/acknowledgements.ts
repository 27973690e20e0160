import { MessageType, type WebSocketLike } from '@hocuspocus/server';
import type { WebSocket } from 'ws';
import type { Metrics } from '../metrics.ts';
import { frameType, readHeader, syncStatusFrame } from '../protocol.ts';
import type { WriteCoalescer } from '../socket/write-coalescer.ts';

/** A client write being handled: what its acknowledgement must wait for. */
export interface PendingWrite {
  /** Settles when everything of the document queued before this write is committed. */
  earlier: Promise<unknown>;
  /**
   * Asked right after the apply. Undefined if the write's content is in the
   * document (or Hocuspocus refused it); if Yjs parked it for missing
   * dependencies, settles true once it is applied and committed, false if it
   * never will be (dropped).
   */
  parked(): Promise<boolean> | undefined;
}

/** What the AcknowledgementGate extension tells a socket's gate, per document connection (by its message address). */
export interface Acknowledgements {
  /** A write for `address` is about to be applied. */
  expectWrite(address: string, write: PendingWrite): void;
  /** The write being applied produced an update that is committed when `committed` settles. */
  holdUntil(address: string, committed: Promise<unknown>): void;
  /** The document connection closed: acknowledgements still queued for it are dropped. */
  forget(address: string): void;
}

interface Gate {
  /** The write being handled now, with the commits it produced. */
  current: { commits: Array<Promise<unknown>>; parked: PendingWrite['parked']; startedAt: number } | null;
  /** Acknowledgements not yet sent; later ones queue behind earlier ones. */
  tail: Promise<void>;
}

// A write that could not be committed is never acknowledged; the client
// keeps it as unsynced and sends it again when it reconnects.
const notCommitted = (): void => {};

/**
 * The WebSocket handed to Hocuspocus. Hocuspocus sends a write's
 * acknowledgement (SyncStatus) the moment the update is applied in memory;
 * this socket holds each acknowledgement of a write back until everything of
 * that document queued so far, including what the write produced, is
 * committed to Postgres, and sends them in order, per document. A write Yjs
 * parked is answered apart from that order, once it is applied and committed
 * (or dropped), so that it holds back no later answer. Every other message
 * (broadcasts to this client, sync replies, awareness) goes out at once.
 */
export class AckGatedSocket implements WebSocketLike, Acknowledgements {
  private readonly gates = new Map<string, Gate>();
  private readonly socket: WebSocket;
  private readonly writes: WriteCoalescer;
  private readonly metrics: Metrics;

  constructor(socket: WebSocket, writes: WriteCoalescer, metrics: Metrics) {
    this.socket = socket;
    this.writes = writes;
    this.metrics = metrics;
  }

  get readyState(): number {
    return this.socket.readyState;
  }

  close(code?: number, reason?: string): void {
    this.socket.close(code, reason);
  }

  expectWrite(address: string, write: PendingWrite): void {
    this.gate(address).current = { commits: [write.earlier], parked: write.parked, startedAt: performance.now() };
  }

  holdUntil(address: string, committed: Promise<unknown>): void {
    this.gates.get(address)?.current?.commits.push(committed);
  }

  forget(address: string): void {
    this.gates.delete(address);
  }

  send(data: Parameters<WebSocketLike['send']>[0]): void {
    const frame = data as Uint8Array;
    if (frameType(frame) !== MessageType.SyncStatus) {
      this.write(frame);
      return;
    }
    const header = readHeader(frame)!;
    const gate = this.gate(header.address);
    const write = gate.current;
    gate.current = null;
    if (!write) {
      // Not the answer to a write we hold (a read-only refusal): keep it in order.
      gate.tail = gate.tail.then(() => this.deliver(header.address, gate, frame));
      return;
    }
    const parked = write.parked();
    this.answerLater(header.address, gate, write.commits, write.startedAt, frame, parked);
  }

  /**
   * Sends the answer once the write's commits settle. Its own method so that
   * the callbacks, which live until the commit, keep only what they need and
   * not the write being handled (its frame, reach and parking closure).
   */
  private answerLater(address: string, gate: Gate, commits: Array<Promise<unknown>>, startedAt: number, frame: Uint8Array, parked: Promise<boolean> | undefined): void {
    if (parked) {
      void parked
        .then((applied) => Promise.all(commits).then(() => applied))
        .then(
          (applied) =>
            applied
              ? this.acknowledge(address, gate, startedAt, syncStatusFrame(address, true))
              : this.deliver(address, gate, syncStatusFrame(address, false)),
          notCommitted,
        );
      return;
    }
    gate.tail = gate.tail
      .then(() => Promise.all(commits))
      .then(() => this.acknowledge(address, gate, startedAt, frame), notCommitted);
  }

  private acknowledge(address: string, gate: Gate, startedAt: number, frame: Uint8Array): void {
    this.metrics.ackLatency.observe((performance.now() - startedAt) / 1000);
    this.deliver(address, gate, frame);
  }

  private deliver(address: string, gate: Gate, frame: Uint8Array): void {
    if (this.gates.get(address) === gate && this.socket.readyState === this.socket.OPEN) this.write(frame);
  }

  private write(frame: Uint8Array): void {
    this.writes.hold();
    this.socket.send(frame);
  }

  private gate(address: string): Gate {
    let gate = this.gates.get(address);
    if (!gate) {
      gate = { current: null, tail: Promise.resolve() };
      this.gates.set(address, gate);
    }
    return gate;
  }
}
