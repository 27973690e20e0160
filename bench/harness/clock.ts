/**
 * Milliseconds on the machine's monotonic clock (CLOCK_MONOTONIC through
 * libuv), which every process on the machine shares: a time taken in one load
 * process can be subtracted from a time taken in another.
 */
export function now(): number {
  const [seconds, nanoseconds] = process.hrtime();
  return seconds * 1e3 + nanoseconds / 1e6;
}
