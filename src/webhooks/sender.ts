import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { checkedLookup, literalHostRefused } from './addresses.ts';

/** What one attempt came to: taken (2xx), to try again (`retryAfterMs` when the receiver said when), or refused for good. */
export type Attempt =
  | { outcome: 'delivered'; status: number }
  | { outcome: 'retry'; status: number | null; error: string; retryAfterMs?: number }
  | { outcome: 'failed'; status: number | null; error: string };

export interface SendOptions {
  timeoutMs: number;
  allowPrivate: boolean;
  /** Cuts the request off before its timeout (the server is stopping). */
  signal?: AbortSignal;
}

/** How much of a refusing receiver's answer is kept in the delivery log. */
const KEPT_ANSWER_CHARS = 200;
/** A Retry-After beyond this is taken as this. */
const LONGEST_RETRY_AFTER_MS = 24 * 60 * 60 * 1000;

/**
 * POSTs `body` with `headers` to `url` once. Redirects are not followed (a
 * 3xx fails the delivery); the host is resolved now and only a public address
 * is connected to unless `allowPrivate` (see checkedLookup).
 */
export function sendOnce(url: URL, headers: Record<string, string>, body: string, options: SendOptions): Promise<Attempt> {
  const refused = literalHostRefused(url, options.allowPrivate);
  if (refused) return Promise.resolve({ outcome: 'failed', status: null, error: refused });
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<Attempt>((resolve) => {
    const outgoing = request(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': 'Concord-Webhooks' },
      lookup: checkedLookup(options.allowPrivate),
      signal: options.signal ? AbortSignal.any([AbortSignal.timeout(options.timeoutMs), options.signal]) : AbortSignal.timeout(options.timeoutMs),
    });
    outgoing.on('response', (response) => {
      const status = response.statusCode ?? 0;
      let answer = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (answer = (answer + chunk).slice(0, KEPT_ANSWER_CHARS)));
      response.on('error', (error) => resolve(networkFailure(error)));
      response.on('end', () => resolve(classify(status, response.headers['retry-after'], answer)));
    });
    outgoing.on('error', (error) => resolve(networkFailure(error)));
    outgoing.end(body);
  });
}

function classify(status: number, retryAfter: string | undefined, answer: string): Attempt {
  if (status >= 200 && status < 300) return { outcome: 'delivered', status };
  const error = `HTTP ${status}${answer ? `: ${answer}` : ''}`;
  if (status >= 500 || status === 408 || status === 429) {
    const retryAfterMs = retryAfterDelay(retryAfter);
    return retryAfterMs === undefined ? { outcome: 'retry', status, error } : { outcome: 'retry', status, error, retryAfterMs };
  }
  return { outcome: 'failed', status, error };
}

function networkFailure(error: Error): Attempt {
  const { code } = error as NodeJS.ErrnoException;
  if (code === 'EPRIVATEADDRESS') return { outcome: 'failed', status: null, error: error.message };
  const reason = error.name === 'TimeoutError' || code === 'ABORT_ERR' ? 'timed out' : `${code ?? error.name}: ${error.message}`;
  return { outcome: 'retry', status: null, error: reason };
}

/** `Retry-After` as seconds or an HTTP date, in milliseconds from now. */
function retryAfterDelay(header: string | undefined): number | undefined {
  if (!header) return undefined;
  const ms = /^\d+$/.test(header.trim()) ? Number(header) * 1000 : Date.parse(header) - Date.now();
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(ms, 0), LONGEST_RETRY_AFTER_MS);
}
