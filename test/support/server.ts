import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { TEST_SECRET } from './tokens.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const START_TIMEOUT_MS = 60_000;
/**
 * Tests poll the HTTP API every 10 ms and the benchmark reads hundreds of
 * versions a minute as one admin: the request limits are lifted unless a test
 * sets them (test/http-limits.test.ts does).
 */
const unlimitedRequests = { HTTP_REQUESTS_PER_MINUTE: '1000000000', HTTP_ANONYMOUS_REQUESTS_PER_MINUTE: '1000000000' };
/** Likewise the per-socket rates: suites write at full speed over one socket (test/socket-limits.test.ts sets them). */
const unlimitedSockets = { SOCKET_MESSAGES_PER_SECOND: '1000000000', SOCKET_BYTES_PER_SECOND: '1000000000000' };
// The server gives queued commits up to 10 s on SIGTERM.
const STOP_TIMEOUT_MS = 15_000;

export interface ServerProcessOptions {
  /** The script to run, relative to the repository (default `src/main.ts`: the Concord server). */
  script?: string;
  /** Node options before the script (`--cpu-prof`, say). */
  nodeArgs?: string[];
}

/**
 * A Concord server in its own process, started exactly as `npm start` starts
 * it (or another server script that prints the same JSON "listening" line).
 */
export class ServerProcess {
  readonly env: Record<string, string>;
  private readonly options: ServerProcessOptions;
  private child: ChildProcess | undefined;
  private output = '';
  private stopping = false;
  port = 0;

  constructor(env: Record<string, string>, options: ServerProcessOptions = {}) {
    this.env = env;
    this.options = options;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Everything the process printed so far. */
  get logs(): string {
    return this.output;
  }

  async start(): Promise<this> {
    const { script = 'src/main.ts', nodeArgs = [] } = this.options;
    const child = spawn(process.execPath, [...nodeArgs, script], {
      cwd: root,
      // Keep the port across restarts so reconnecting providers find the server again.
      env: { ...process.env, AUTH_JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'info', PORT: String(this.port), HOST: '127.0.0.1', ...unlimitedRequests, ...unlimitedSockets, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    // Never leave a server behind, also when the test process ends early.
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    child.once('exit', () => process.off('exit', killOnExit));
    // A restart's output follows the last run's: only this run's "listening" line counts.
    const runStart = this.output.length;
    const listening = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${this.output}`)), START_TIMEOUT_MS);
      child.stdout!.on('data', (chunk: Buffer) => {
        this.output += chunk.toString();
        const match = /"port":(\d+).*listening on/.exec(this.output.slice(runStart));
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code} before listening:\n${this.output}`));
        // A server that dies on its own is a bug worth seeing in the test output.
        if (this.port && signal === null && !this.stopping) console.error(`server on port ${this.port} exited with ${code}:\n${this.output}`);
      });
    });
    this.port = await listening;
    return this;
  }

  /** Ends the process with `signal` (SIGKILL: no chance to flush anything). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    this.stopping = true;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
    this.stopping = false;
  }

  /** The server's process id (for its CPU and memory), once started. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** GET /metrics: each series name to the sum of its values, and each `name{labels}` to its value. */
  async metrics(): Promise<Map<string, number>> {
    const response = await this.get('/metrics');
    if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
    const series = new Map<string, number>();
    for (const line of (await response.text()).split('\n')) {
      const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
      if (!match) continue;
      series.set(match[1]!, (series.get(match[1]!) ?? 0) + Number(match[3]));
      if (match[2]) series.set(match[1]! + match[2], Number(match[3]));
    }
    return series;
  }

  async get(path: string, token?: string): Promise<Response> {
    return fetch(this.httpUrl + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  }
}

export async function startServer(env: Record<string, string>): Promise<ServerProcess> {
  return new ServerProcess(env).start();
}

/** Server log entries at warn or above, and anything not JSON (Hocuspocus writes plain text to stderr). */
export function serverProblems(logs: string): string[] {
  return logs
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => {
      try {
        const entry = JSON.parse(line) as { level?: number; msg?: string; code?: string; err?: { message?: string } };
        return (entry.level ?? 0) >= 40 ? [`[${entry.level}] ${entry.code ?? ''} ${entry.msg}${entry.err ? `: ${entry.err.message}` : ''}`] : [];
      } catch {
        return [line.slice(0, 400)];
      }
    });
}
