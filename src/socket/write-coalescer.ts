import type { Writable } from 'node:stream';

/**
 * Lets the frames a socket is sent in one burst of work (an event-loop
 * callback and every promise reaction run before Node returns to the loop)
 * leave in one write to the network. ws writes each frame on its own, so the
 * acknowledgements one commit releases would otherwise cost a system call
 * each. The price: a burst's first frame waits for the rest of the burst's
 * synchronous work (the next commit prepared after one settled, say).
 */
export class WriteCoalescer {
  private readonly transport: Writable;
  private readonly afterFlush: () => void;
  private corked = false;

  /**
   * `afterFlush`: called once a burst's writes were handed to the network.
   * What is still unsent then is what the peer has not taken, which is what
   * a backlog check must look at (during the burst everything is unsent).
   */
  constructor(transport: Writable, afterFlush: () => void = () => {}) {
    this.transport = transport;
    this.afterFlush = afterFlush;
  }

  /** Call before a write: the first of a burst corks the transport. */
  hold(): void {
    if (this.corked) return;
    this.corked = true;
    this.transport.cork();
    // A tick scheduled from a microtask runs once the microtask queue is empty: after the whole burst,
    // wherever it began (from a callback's synchronous part, a tick would run before its promise reactions).
    queueMicrotask(this.releaseAfterBurst);
  }

  private readonly releaseAfterBurst = (): void => {
    process.nextTick(this.release);
  };

  private readonly release = (): void => {
    this.corked = false;
    this.transport.uncork();
    this.afterFlush();
  };
}
