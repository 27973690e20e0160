import type { Connection } from '@hocuspocus/server';

interface Held {
  frame: Uint8Array;
  timer: NodeJS.Timeout;
}

/**
 * The latest awareness frame of each connection that the rate held back,
 * handled again (every hook, the rate too) once the rate allows one.
 * Awareness is the latest state per client: were a cursor's last move dropped,
 * the others would see the cursor where it was until the provider renews its
 * state, 15 s later. Holding the latest alone keeps both the budget (a held
 * frame spends it when it goes) and the final position. A frame that goes
 * through meanwhile leaves it held: it may be an older one handled again, and
 * a held frame outdated when it goes changes nothing.
 */
export class HeldAwareness {
  private readonly byConnection = new Map<Connection, Held>();
  /** Hears of each frame dropped for good: replaced by a later one, or its connection closed. */
  private readonly dropped: () => void;

  constructor(dropped: () => void) {
    this.dropped = dropped;
  }

  /** Holds `frame` for `waitMs`, in place of any frame `connection` had held (which is dropped). */
  hold(connection: Connection, frame: Uint8Array, waitMs: number): void {
    const held = this.byConnection.get(connection);
    if (held) {
      held.frame = frame;
      this.dropped();
      return;
    }
    const entry: Held = {
      frame,
      timer: setTimeout(() => {
        this.byConnection.delete(connection);
        // Closed meanwhile: Hocuspocus removed its clients' states, which the frame would bring back.
        if (connection.document.hasConnection(connection)) connection.handleMessage(entry.frame);
        else this.dropped();
      }, waitMs).unref(),
    };
    this.byConnection.set(connection, entry);
  }

  /** Drops everything held (the server stops). */
  close(): void {
    for (const { timer } of this.byConnection.values()) clearTimeout(timer);
    this.byConnection.clear();
  }
}
