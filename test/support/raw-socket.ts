import * as decoding from 'lib0/decoding';
import WebSocket from 'ws';
import { waitFor } from './clients.ts';
import { authFrame } from './frames.ts';

/** What the server sent for one document on a raw socket. */
export interface DocumentTraffic {
  authenticated: boolean;
  denied: string[];
  /** Close reasons (message type 7). */
  closeReasons: string[];
  /** Answers to writes (message type 8): true for applied. */
  syncStatuses: boolean[];
  /** Stateless payloads, parsed. */
  stateless: Array<Record<string, unknown>>;
  /** Sync step 2 answers (the answer to a sync step 1). */
  syncStep2s: number;
  /** Every sync message, in order: its step (0 sync step 1, 1 sync step 2, 2 update) and payload. */
  sync: Array<{ step: number; payload: Uint8Array }>;
}

/** A WebSocket that speaks raw Hocuspocus frames and records what comes back, per document. */
export class RawSocket {
  readonly ws: WebSocket;
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly traffic = new Map<string, DocumentTraffic>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('error', () => {});
    ws.on('message', (data: Buffer) => this.record(new Uint8Array(data)));
  }

  static async open(url: string): Promise<RawSocket> {
    const ws = new WebSocket(url);
    const socket = new RawSocket(ws);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return socket;
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  of(document: string): DocumentTraffic {
    let traffic = this.traffic.get(document);
    if (!traffic) {
      traffic = { authenticated: false, denied: [], closeReasons: [], syncStatuses: [], stateless: [], syncStep2s: 0, sync: [] };
      this.traffic.set(document, traffic);
    }
    return traffic;
  }

  send(frame: Uint8Array): void {
    this.ws.send(frame);
  }

  /** Authenticates `document` and waits for the answer. */
  async authenticate(document: string, token: string): Promise<void> {
    this.send(authFrame(document, token));
    await waitFor(`${document} authenticated`, () => this.of(document).authenticated, 20_000);
  }

  close(): void {
    this.ws.close();
  }

  private record(bytes: Uint8Array): void {
    const decoder = decoding.createDecoder(bytes);
    const traffic = this.of(decoding.readVarString(decoder));
    const type = decoding.readVarUint(decoder);
    if (type === 0 || type === 4) {
      const step = decoding.readVarUint(decoder);
      traffic.sync.push({ step, payload: decoding.readVarUint8Array(decoder) });
      if (step === 1) traffic.syncStep2s += 1;
    } else if (type === 2) {
      const authType = decoding.readVarUint(decoder);
      if (authType === 2) traffic.authenticated = true;
      if (authType === 1) traffic.denied.push(decoding.readVarString(decoder));
    } else if (type === 5) {
      const payload = decoding.readVarString(decoder);
      try {
        traffic.stateless.push(JSON.parse(payload));
      } catch {
        traffic.stateless.push({ text: payload });
      }
    } else if (type === 7) {
      traffic.closeReasons.push(decoding.readVarString(decoder));
    } else if (type === 8) {
      traffic.syncStatuses.push(decoding.readVarUint(decoder) === 1);
    }
  }
}

/** Lines of a server's output that are not one JSON object each (logs must be JSON lines). */
export function nonJsonLines(output: string): string[] {
  return output.split('\n').filter((line) => {
    if (!line.trim()) return false;
    try {
      return typeof JSON.parse(line) !== 'object';
    } catch {
      return true;
    }
  });
}
