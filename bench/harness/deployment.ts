import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createStorage, type TestStorage } from '../../test/support/database.ts';
import { RedisProcess } from '../../test/support/redis.ts';
import { ServerProcess, serverProblems } from '../../test/support/server.ts';
import { token } from '../../test/support/tokens.ts';
import { postgresBackends, processUsage } from './machine.ts';

/** Concord, or the baseline: bare Hocuspocus 4.7 with no extensions (bench/harness/bare-server.ts). */
export type TargetKind = 'concord' | 'bare';

export interface DeploymentOptions {
  kind: TargetKind;
  /** Where the fresh PostgreSQL database is created (Concord only). */
  adminUrl: string;
  /** Server processes sharing one database and, when there are several, one Redis of the benchmark's own. */
  instances?: number;
  /** Run Redis even for one instance (the same deployment at every size, for a scale-out comparison). */
  redis?: boolean;
  /** Concord's database: a fresh PostgreSQL database (production), or the embedded PGlite (`npm start`'s default). */
  storage?: 'postgres' | 'pglite';
  /** With a folder, every server process writes a CPU profile below it (`--cpu-prof`), one folder per start. */
  profileDir?: string;
}

export const TENANT = 'bench';

/** The Node flags Concord runs with in production: `npm start`'s (the image's CMD has the same). */
const CONCORD_NODE_FLAGS = startFlags();

/**
 * The server side of one measurement: Concord as in production (a real
 * PostgreSQL database of its own, `NODE_ENV=production`, a JWT secret; Redis
 * when there are several instances) or on PGlite, or bare Hocuspocus.
 */
export class Deployment {
  readonly kind: TargetKind;
  /** What was started: "Concord on PostgreSQL, 2 instances", say. */
  readonly description: string;
  /** Concord's database (the harness reads it to check what was stored). */
  readonly storage: TestStorage | undefined;
  /** The CPU profiles the servers write, one folder per start (with `profileDir`). */
  readonly profiles: Array<{ label: string; dir: string }> = [];
  servers: ServerProcess[] = [];
  private readonly retired: ServerProcess[] = [];
  private readonly env: Record<string, string>[];
  private readonly redis: RedisProcess | undefined;
  private readonly profileDir: string | undefined;

  private constructor(options: DeploymentOptions, storage?: TestStorage, redis?: RedisProcess) {
    const { kind, instances = 1, storage: storageKind = 'postgres' } = options;
    this.kind = kind;
    this.description = `${kind === 'concord' ? `Concord on ${storageKind === 'postgres' ? 'PostgreSQL' : 'PGlite'}` : 'bare Hocuspocus'}${instances > 1 || redis ? `, ${instances} instance${instances > 1 ? 's' : ''} with Redis` : ''}`;
    this.storage = storage;
    this.redis = redis;
    this.profileDir = options.profileDir;
    const env = { ...storage?.env, ...(redis && { REDIS_URL: redis.url }), NODE_ENV: 'production' };
    this.env = Array.from({ length: instances }, (_, i) => ({ ...env, INSTANCE_ID: `bench-${i + 1}` }));
  }

  static async start(options: DeploymentOptions): Promise<Deployment> {
    const redis = (options.redis ?? (options.instances ?? 1) > 1) ? await new RedisProcess().start() : undefined;
    const storage = options.kind === 'concord' ? await createStorage(options.storage ?? 'postgres', options.adminUrl) : undefined;
    const deployment = new Deployment(options, storage, redis);
    try {
      await deployment.startServers(deployment.description);
    } catch (error) {
      await deployment.stop();
      throw error;
    }
    return deployment;
  }

  /**
   * Stops the servers and starts new ones on the same database, with `env`
   * added to their settings: nothing is loaded, and a new profile begins,
   * labelled with `purpose`.
   */
  async restart(purpose: string, env: Record<string, string> = {}): Promise<void> {
    await Promise.all(this.servers.map((server) => server.stop()));
    this.retired.push(...this.servers);
    await this.startServers(`${this.description}, restarted: ${purpose}`, env);
  }

  private async startServers(label: string, extraEnv: Record<string, string> = {}): Promise<void> {
    const script = this.kind === 'bare' ? 'bench/harness/bare-server.ts' : undefined;
    const dir = this.profileDir && join(this.profileDir, String(this.profiles.length));
    if (dir) this.profiles.push({ label, dir });
    const nodeArgs = [...(this.kind === 'concord' ? CONCORD_NODE_FLAGS : []), ...(dir ? ['--cpu-prof', '--cpu-prof-dir', dir] : [])];
    this.servers = this.env.map((env) => new ServerProcess({ ...env, ...extraEnv }, { script, nodeArgs }));
    await Promise.all(this.servers.map((server) => server.start()));
  }

  get server(): ServerProcess {
    return this.servers[0]!;
  }

  /** Every process serving this deployment: servers, their Postgres backends, Redis (for the noise figures). */
  get pids(): number[] {
    return [...this.servers.map((server) => server.pid), this.redis?.pid, ...this.postgresBackends()].filter((pid): pid is number => pid !== undefined);
  }

  /** CPU time (all, and in user space) and resident memory of the server processes, summed. */
  usage(): { cpuMs: number; userMs: number; rssBytes: number } {
    let [cpuMs, userMs, rssBytes] = [0, 0, 0];
    for (const server of this.servers) {
      const usage = server.pid ? processUsage(server.pid) : undefined;
      if (!usage) throw new Error(`the ${this.kind} server process is gone:\n${server.logs.slice(-2000)}`);
      cpuMs += usage.cpuMs;
      userMs += usage.userMs;
      rssBytes += usage.rssBytes;
    }
    return { cpuMs, userMs, rssBytes };
  }

  /** CPU time of this deployment's Postgres backends (Concord), or 0. */
  postgresCpuMs(): number {
    return this.postgresBackends().reduce((sum, pid) => sum + (processUsage(pid)?.cpuMs ?? 0), 0);
  }

  private postgresBackends(): number[] {
    const url = this.storage?.databaseUrl;
    return url ? postgresBackends(new URL(url).pathname.slice(1)) : [];
  }

  /** A token the bare server ignores and Concord checks (signed with the secret ServerProcess gives it). */
  token(user: string, role = 'editor'): Promise<string> {
    return token({ tenant: TENANT, sub: user, role, name: user });
  }

  /** Stops everything and returns what the servers logged at warn or above (and anything not JSON). */
  async stop(): Promise<string[]> {
    await Promise.all(this.servers.map((server) => server.stop()));
    await this.redis?.stop();
    await this.storage?.drop();
    return [...this.retired, ...this.servers].flatMap((server) => serverProblems(server.logs));
  }
}

function startFlags(): string[] {
  const { scripts } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } };
  return scripts.start.split(/\s+/).filter((word) => word.startsWith('--'));
}
