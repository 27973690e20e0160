import { MessageType } from '@hocuspocus/server';
import type { WebSocket } from 'ws';
import type { Metrics } from '../metrics.ts';
import { AckGatedSocket } from '../persistence/acknowledgements.ts';
import { AuthMessageType, readHeader } from '../protocol.ts';

/**
 * The socket handed to Hocuspocus (acknowledgements gated as AckGatedSocket
 * does), which also follows from what the server sends which documents of
 * the socket are open: authenticated (Auth "authenticated") and not closed
 * since (Close), and whether any document ever was.
 */
export class WatchedSocket extends AckGatedSocket {
  /** Set once any document authenticated; sticky, as in Hocuspocus. */
  authenticated = false;
  private readonly open = new Set<string>();
  /** Called when the server answers a document's authentication, either way, or closes it. */
  private readonly onSettled: (address: string) => void;

  constructor(ws: WebSocket, metrics: Metrics, onSettled: (address: string) => void) {
    super(ws, metrics);
    this.onSettled = onSettled;
  }

  isOpen(address: string): boolean {
    return this.open.has(address);
  }

  override send(data: Uint8Array): void {
    const header = readHeader(data);
    if (header?.type === MessageType.Auth) {
      if (header.subtype === AuthMessageType.Authenticated) {
        this.authenticated = true;
        this.open.add(header.address);
      }
      this.onSettled(header.address);
    } else if (header?.type === MessageType.CLOSE) {
      this.open.delete(header.address);
      this.onSettled(header.address);
    }
    super.send(data);
  }
}
