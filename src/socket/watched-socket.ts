import { MessageType } from '@hocuspocus/server';
import type { WebSocket } from 'ws';
import type { Metrics } from '../metrics.ts';
import { AckGatedSocket } from '../persistence/acknowledgements.ts';
import { AuthMessageType, frameType, readHeader } from '../protocol.ts';
import type { WriteCoalescer } from './write-coalescer.ts';

export interface WatchedSocketOptions {
  /** The socket's network writes: frames sent in one burst leave together. */
  writes: WriteCoalescer;
  metrics: Metrics;
  /** Called when the server answers a document's authentication, either way, or closes it. */
  onSettled(address: string): void;
}

/**
 * The socket handed to Hocuspocus (acknowledgements gated as AckGatedSocket
 * does), which also follows from what the server sends which documents of
 * the socket are open: authenticated (Auth "authenticated") and not closed
 * or denied since (Close, Auth "permission denied"), and whether any
 * document ever was.
 */
export class WatchedSocket extends AckGatedSocket {
  /** Set once any document authenticated; sticky, as in Hocuspocus. */
  authenticated = false;
  private readonly open = new Set<string>();
  private readonly options: WatchedSocketOptions;

  constructor(ws: WebSocket, options: WatchedSocketOptions) {
    super(ws, options.writes, options.metrics);
    this.options = options;
  }

  isOpen(address: string): boolean {
    return this.open.has(address);
  }

  override send(data: Uint8Array): void {
    const type = frameType(data);
    const header = type === MessageType.Auth || type === MessageType.CLOSE ? readHeader(data) : undefined;
    if (header?.type === MessageType.Auth) {
      if (header.subtype === AuthMessageType.Authenticated) {
        this.authenticated = true;
        this.open.add(header.address);
      } else if (header.subtype === AuthMessageType.PermissionDenied) {
        // Also after Authenticated, when the document then fails to load: Hocuspocus forgets the address.
        this.open.delete(header.address);
      }
      this.options.onSettled(header.address);
    } else if (header?.type === MessageType.CLOSE) {
      this.open.delete(header.address);
      this.options.onSettled(header.address);
    }
    super.send(data);
  }
}
