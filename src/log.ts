import { pino, type Logger } from 'pino';

export type { Logger };

/** `destination` 2 (stderr) for command-line tools, whose stdout is their answer. */
export function createLogger(level: string, destination: 1 | 2 = 1): Logger {
  return pino({ level, base: { service: 'concord' } }, pino.destination(destination));
}
