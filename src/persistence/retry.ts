import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryOptions {
  firstDelayMs: number;
  maxDelayMs: number;
  /** Aborting stops the retries (and the wait between them) with the signal's reason. */
  signal: AbortSignal;
  onFailure(error: unknown, retryInMs: number): void;
}

/** Runs `attempt` until it succeeds, waiting twice as long after each failure, up to a cap. */
export async function retryUntilDone<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  for (let delay = options.firstDelayMs; ; delay = Math.min(delay * 2, options.maxDelayMs)) {
    options.signal.throwIfAborted();
    try {
      return await attempt();
    } catch (error) {
      options.signal.throwIfAborted();
      options.onFailure(error, delay);
      await sleep(delay, undefined, { signal: options.signal });
    }
  }
}
