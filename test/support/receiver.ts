import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChangeEvent } from '../../src/events/event.ts';

/** One request a receiver got, and what it answered. */
export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  body: string;
  events: ChangeEvent[];
  /** The status it answered with. */
  status: number;
}

/** How a receiver answers its `index`th request (from 0): a status, and headers such as Retry-After. */
export type Answer = (request: { index: number; events: ChangeEvent[] }) => number | { status: number; headers?: Record<string, string>; delayMs?: number };

/**
 * A webhook receiver over real HTTP on 127.0.0.1, recording every request.
 * It can be stopped and started again on the same port (a receiver that is down).
 */
export class Receiver {
  readonly requests: ReceivedRequest[] = [];
  answer: Answer;
  /** Told of each request's events as it arrives, before it is answered (the benchmark times arrivals). */
  onEvents: (events: ChangeEvent[]) => void = () => {};
  port = 0;
  private server: Server | undefined;

  constructor(answer: Answer = () => 200) {
    this.answer = answer;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** The events of the requests it took (answered 2xx), in the order they arrived. */
  get taken(): ChangeEvent[] {
    return this.requests.filter((request) => request.status >= 200 && request.status < 300).flatMap((request) => request.events);
  }

  async start(): Promise<this> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const events = (JSON.parse(body) as { events: ChangeEvent[] }).events;
        this.onEvents(events);
        const answer = this.answer({ index: this.requests.length, events });
        const { status, headers = {}, delayMs = 0 } = typeof answer === 'number' ? { status: answer } : answer;
        setTimeout(() => {
          this.requests.push({ headers: request.headers, body, events, status });
          response.writeHead(status, headers).end(status >= 400 ? `refused with ${status}` : '');
        }, delayMs);
      });
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  /** Closes the port (requests under way are cut off). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
