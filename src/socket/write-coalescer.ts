import type { Writable } from 'node:stream';

/**
 * Lets the frames a socket is sent in one burst of work (an event-loop
 * callback and the promise reactions it sets off) leave in one write to the
 * network. ws writes each frame on its own, so the acknowledgements one
 * commit releases, or the updates of several writers relayed in one turn,
 * would otherwise cost a system call each.
 */
export class WriteCoalescer {
  private readonly transport: Writable;
  private corked = false;

  constructor(transport: Writable) {
    this.transport = transport;
  }

  /** Call before a write: the first of a burst corks the transport, uncorked once the burst's microtasks have run (a tick runs after them). */
  hold(): void {
    if (this.corked) return;
    this.corked = true;
    this.transport.cork();
    process.nextTick(this.release);
  }

  private readonly release = (): void => {
    this.corked = false;
    this.transport.uncork();
  };
}
