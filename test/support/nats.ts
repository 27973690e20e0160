import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliverPolicy, jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import type { ChangeEvent } from '../../src/events/event.ts';

/**
 * A nats-server of the test's own (Debian's nats-server, JetStream on), on a
 * free port with its store in a directory of its own: a test can stop it and
 * start it again on the same port and store.
 */
export class NatsProcess {
  port = 0;
  readonly storeDir = mkdtempSync(join(tmpdir(), 'concord-nats-'));
  private readonly maxPayload: number | undefined;
  private readonly credentials: { user: string; pass: string } | undefined;
  private child: ChildProcess | undefined;

  /**
   * `maxPayload`: the largest message the server takes (its max_payload;
   * NATS's default is 1 MB); `credentials`: the user and password it asks of
   * every client.
   */
  constructor(options: { maxPayload?: number; credentials?: { user: string; pass: string } } = {}) {
    this.maxPayload = options.maxPayload;
    this.credentials = options.credentials;
  }

  /** How a client connects to it (once started). */
  get connectOptions(): ConnectionOptions {
    return { servers: this.url, ...this.credentials, reconnect: false };
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** The server's process id (the benchmark counts its CPU), once started. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<this> {
    this.port ||= await freePort();
    const args = ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir];
    if (this.credentials) args.push('--user', this.credentials.user, '--pass', this.credentials.pass);
    if (this.maxPayload) {
      const config = join(this.storeDir, 'nats.conf');
      writeFileSync(config, `max_payload: ${this.maxPayload}\n`);
      args.push('-c', config);
    }
    const child = spawn('nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    let output = '';
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    child.once('exit', () => process.off('exit', killOnExit));
    await new Promise<void>((resolve, reject) => {
      child.once('error', (error) => reject(new Error(`nats-server could not start (Debian: apt-get install nats-server): ${error.message}`)));
      child.once('exit', (code) => reject(new Error(`nats-server exited with ${code}:\n${output}`)));
      this.whenJetStreamAnswers().then(resolve, reject);
    });
    return this;
  }

  /** Kills the server: clients see their connections drop; what JetStream stored stays in its store. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  async drop(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }

  private async whenJetStreamAnswers(): Promise<void> {
    const started = Date.now();
    for (;;) {
      try {
        const connection = await connect(this.connectOptions);
        try {
          await (await jetstreamManager(connection)).getAccountInfo();
          return;
        } finally {
          await connection.close();
        }
      } catch (error) {
        if (Date.now() - started > 10_000) throw new Error(`nats-server did not answer on ${this.port}: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }
}

/** One message of the stream as a consumer receives it. */
export interface StreamMessage {
  /** The stream's sequence number. */
  seq: number;
  subject: string;
  msgId: string | undefined;
  event: ChangeEvent;
}

/**
 * Reads a JetStream stream the way a consumer does: each `read` catches up
 * with an ordered consumer from after the last message it received, on a
 * connection of its own (so it needs nothing to survive a server restart).
 */
export class StreamReader {
  readonly messages: StreamMessage[] = [];
  private readonly nats: NatsProcess;
  private readonly stream: string;

  constructor(nats: NatsProcess, stream = 'concord') {
    this.nats = nats;
    this.stream = stream;
  }

  /** Every message received so far, after taking in what the stream holds now (none while the stream does not exist). */
  async read(): Promise<StreamMessage[]> {
    const connection = await connect(this.nats.connectOptions);
    try {
      const stored = await this.storedCount(connection);
      const after = this.messages.at(-1)?.seq ?? 0;
      if (stored <= after) return this.messages;
      const consumer = await jetstream(connection).consumers.get(this.stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 });
      while ((this.messages.at(-1)?.seq ?? 0) < stored) {
        const batch = await consumer.fetch({ max_messages: Math.min(1000, stored - (this.messages.at(-1)?.seq ?? 0)), expires: 2_000 });
        let received = 0;
        for await (const message of batch) {
          received += 1;
          this.messages.push({ seq: message.seq, subject: message.subject, msgId: message.headers?.get('Nats-Msg-Id'), event: message.json<ChangeEvent>() });
        }
        if (received === 0) throw new Error(`the stream holds ${stored} messages, but the consumer received none after ${this.messages.at(-1)?.seq ?? 0}`);
      }
      return this.messages;
    } finally {
      await connection.close();
    }
  }

  /** The highest sequence the stream holds (0: none, or no stream yet). */
  private async storedCount(connection: NatsConnection): Promise<number> {
    try {
      return (await (await jetstreamManager(connection)).streams.info(this.stream)).state.last_seq;
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) return 0;
      throw error;
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
