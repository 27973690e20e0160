import { MessageType, type WebSocketLike } from '@hocuspocus/server';
import type { WebSocket } from 'ws';
import type { Metrics } from '../metrics.ts';
import { outgoingType } from '../protocol.ts';

interface Gate {
  /** Commits the current write must wait for; null when no write is being handled. */
  current: Array<Promise<unknown>> | null;
  startedAt: number;
  /** Acknowledgements not yet sent; later ones queue behind earlier ones. */
  queued: number;
  tail: Promise<void>;
}

/**
 * The WebSocket handed to Hocuspocus. Hocuspocus sends a write's
 * acknowledgement (SyncStatus) the moment the update is applied in memory;
 * this socket holds each acknowledgement back until the updates that write
 * produced are committed to Postgres, in order, per document. Every other
 * message (broadcasts to this client, sync replies, awareness) goes out at once.
 */
export class AckGatedSocket implements WebSocketLike {
  private readonly gates = new Map<string, Gate>();

  private readonly socket: WebSocket;
  private readonly metrics: Metrics;

  constructor(socket: WebSocket, metrics: Metrics) {
    this.socket = socket;
    this.metrics = metrics;
  }

  get readyState(): number {
    return this.socket.readyState;
  }

  close(code?: number, reason?: string): void {
    this.socket.close(code, reason);
  }

  /** A write for `address` is about to be applied; its acknowledgement waits for `holdUntil`. */
  expectWrite(address: string): void {
    const gate = this.gate(address);
    gate.current = [];
    gate.startedAt = performance.now();
  }

  /** The write being applied produced an update that is committed when `committed` settles. */
  holdUntil(address: string, committed: Promise<unknown>): void {
    this.gates.get(address)?.current?.push(committed);
  }

  send(data: Parameters<WebSocketLike['send']>[0]): void {
    const frame = data as Uint8Array;
    const header = outgoingType(frame);
    if (header?.type !== MessageType.SyncStatus) {
      this.socket.send(frame);
      return;
    }
    const gate = this.gate(header.address);
    const waits = gate.current ?? [];
    const startedAt = gate.startedAt;
    gate.current = null;
    if (waits.length === 0 && gate.queued === 0) {
      this.acknowledge(frame, startedAt);
      return;
    }
    gate.queued += 1;
    gate.tail = gate.tail
      .then(() => Promise.all(waits))
      .then(
        () => this.acknowledge(frame, startedAt),
        // A write that could not be committed is never acknowledged; the
        // client keeps it as unsynced and sends it again when it reconnects.
        () => {},
      )
      .finally(() => {
        gate.queued -= 1;
      });
  }

  private acknowledge(frame: Uint8Array, startedAt: number): void {
    this.metrics.ackLatency.observe((performance.now() - startedAt) / 1000);
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(frame);
  }

  private gate(address: string): Gate {
    let gate = this.gates.get(address);
    if (!gate) {
      gate = { current: null, startedAt: 0, queued: 0, tail: Promise.resolve() };
      this.gates.set(address, gate);
    }
    return gate;
  }
}
