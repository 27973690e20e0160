const DAY_MS = 24 * 60 * 60 * 1000;

/** How often retention passes run (history, events). */
export const RETENTION_EVERY_MS = 60 * 60 * 1000;

/** The moment before which what is older than `days` is pruned. */
export function retentionCutoff(days: number, now = Date.now()): Date {
  return new Date(now - days * DAY_MS);
}

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
