import { createConnection, createServer, type Socket } from 'node:net';

/**
 * A loopback TCP proxy. In front of PostgreSQL, a test takes the database away
 * from one server process (every connection cut, new ones refused) and gives
 * it back, without stopping the PostgreSQL other tests use; in front of server
 * instances it is a load balancer that sends new connections elsewhere.
 */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private readonly server = createServer((client) => this.accept(client));
  private up = true;
  /** How much later what the target sends reaches the client. */
  private latencyMs = 0;
  /** False while the link silently loses everything (see stall). */
  private forwarding = true;
  port = 0;

  private target: { host: string; port: number };

  constructor(target: { host: string; port: number }) {
    this.target = target;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  cut(): void {
    this.up = false;
    for (const socket of this.sockets) socket.destroy();
  }

  /** New connections go to `target`; open ones stay where they are. */
  retarget(target: { host: string; port: number }): void {
    this.target = target;
  }

  restore(): void {
    this.up = true;
    this.forwarding = true;
  }

  /** The link silently loses everything both ways, with the connections left open (until cut or restore). */
  stall(): void {
    this.forwarding = false;
  }

  /** From now on, what the target sends reaches the client `ms` later (a slow link), in order. */
  delayAnswers(ms: number): void {
    this.latencyMs = ms;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(client: Socket): void {
    if (!this.up) return void client.destroy();
    const upstream = createConnection(this.target);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => this.forwarding && upstream.write(chunk));
    client.on('end', () => upstream.end());
    const toClient = (send: () => void) => (this.latencyMs === 0 ? send() : setTimeout(send, this.latencyMs));
    upstream.on('data', (chunk: Buffer) => this.forwarding && toClient(() => client.write(chunk)));
    upstream.on('end', () => toClient(() => client.end()));
  }
}
