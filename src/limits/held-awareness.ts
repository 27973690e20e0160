import type { Connection } from '@hocuspocus/server';

interface Held {
  connection: Connection;
  frame: Uint8Array;
  timer: NodeJS.Timeout;
}

/**
 * The latest awareness frame of each document connection that the rate held
 * back, handled again (every hook, the rate too) once the rate allows one.
 * Awareness is the latest state per client: were a cursor's last move dropped,
 * the others would see the cursor where it was until the provider renews its
 * state, 15 s later. Holding the latest alone keeps both the budget (a held
 * frame spends it when it goes) and the final position.
 */
export class HeldAwareness {
  private readonly byKey = new Map<string, Held>();

  /** Holds `frame` for `waitMs`, in place of any frame held for `key`; true if that one was dropped. */
  hold(key: string, connection: Connection, frame: Uint8Array, waitMs: number): boolean {
    const held = this.byKey.get(key);
    if (held) {
      held.frame = frame;
      return true;
    }
    const timer = setTimeout(() => {
      const due = this.byKey.get(key);
      this.byKey.delete(key);
      due?.connection.handleMessage(due.frame);
    }, waitMs).unref();
    this.byKey.set(key, { connection, frame, timer });
    return false;
  }

  /**
   * Drops what is held for `key` (the connection closed). A frame that goes
   * through does not: it may be an older one handled again, and a held one
   * that is outdated when it goes changes nothing. True if one was dropped.
   */
  drop(key: string): boolean {
    const held = this.byKey.get(key);
    if (!held) return false;
    clearTimeout(held.timer);
    return this.byKey.delete(key);
  }

  /** Drops everything held (the server stops). */
  close(): void {
    for (const key of [...this.byKey.keys()]) this.drop(key);
  }
}
