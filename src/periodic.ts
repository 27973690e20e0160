/**
 * Runs a maintenance pass when started and every `everyMs` after, never two
 * at once; `stop` lets a pass under way finish. The pass reports its own
 * failures (it runs again next time).
 */
export class Periodic {
  private readonly pass: (shouldStop: () => boolean) => Promise<void>;
  private readonly everyMs: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(everyMs: number, pass: (shouldStop: () => boolean) => Promise<void>) {
    this.everyMs = everyMs;
    this.pass = pass;
  }

  start(): void {
    this.run();
    this.timer = setInterval(() => this.run(), this.everyMs).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  private run(): void {
    if (this.running || this.stopped) return;
    this.running = this.pass(() => this.stopped).finally(() => (this.running = null));
  }
}
