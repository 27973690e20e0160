import { createStorage, type TestStorage } from '../../test/support/database.ts';
import { RedisProcess } from '../../test/support/redis.ts';
import { ServerProcess } from '../../test/support/server.ts';
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
  /** Concord's database: a fresh PostgreSQL database (production), or the embedded PGlite (`npm start`'s default). */
  storage?: 'postgres' | 'pglite';
  /** Node options for the server processes (`--cpu-prof`, say). */
  nodeArgs?: string[];
}

export const TENANT = 'bench';

/**
 * The server side of one measurement: Concord as in production (a real
 * PostgreSQL database of its own, `NODE_ENV=production`, a JWT secret; Redis
 * when there are several instances) or on PGlite, or bare Hocuspocus.
 */
export class Deployment {
  readonly kind: TargetKind;
  /** What was started: "Concord on PostgreSQL, 2 instances", say. */
  readonly description: string;
  readonly servers: ServerProcess[];
  /** Concord's database (the harness reads it to check what was stored). */
  readonly storage: TestStorage | undefined;
  private readonly redis: RedisProcess | undefined;

  private constructor(kind: TargetKind, description: string, servers: ServerProcess[], storage?: TestStorage, redis?: RedisProcess) {
    this.kind = kind;
    this.description = description;
    this.servers = servers;
    this.storage = storage;
    this.redis = redis;
  }

  static async start({ kind, adminUrl, instances = 1, storage: storageKind = 'postgres', nodeArgs = [] }: DeploymentOptions): Promise<Deployment> {
    const redis = instances > 1 ? await new RedisProcess().start() : undefined;
    const storage = kind === 'concord' ? await createStorage(storageKind, adminUrl) : undefined;
    const env: Record<string, string> = { ...storage?.env, ...(redis && { REDIS_URL: redis.url }), NODE_ENV: 'production' };
    const script = kind === 'bare' ? 'bench/harness/bare-server.ts' : undefined;
    const servers = Array.from({ length: instances }, (_, i) => new ServerProcess({ ...env, INSTANCE_ID: `bench-${i + 1}` }, { script, nodeArgs }));
    const description = `${kind === 'concord' ? `Concord on ${storageKind === 'postgres' ? 'PostgreSQL' : 'PGlite'}` : 'bare Hocuspocus'}${instances > 1 ? `, ${instances} instances` : ''}`;
    const deployment = new Deployment(kind, description, servers, storage, redis);
    try {
      await Promise.all(servers.map((server) => server.start()));
    } catch (error) {
      await deployment.stop();
      throw error;
    }
    return deployment;
  }

  get server(): ServerProcess {
    return this.servers[0]!;
  }

  /** Every process serving this deployment: servers, their Postgres backends, Redis (for the noise figures). */
  get pids(): number[] {
    return [...this.servers.map((server) => server.pid), this.redis?.pid, ...this.postgresBackends()].filter((pid): pid is number => pid !== undefined);
  }

  /** CPU time and resident memory of the server processes, summed. */
  usage(): { cpuMs: number; rssBytes: number } {
    let [cpuMs, rssBytes] = [0, 0];
    for (const server of this.servers) {
      const usage = server.pid ? processUsage(server.pid) : undefined;
      if (!usage) throw new Error(`the ${this.kind} server process is gone:\n${server.logs.slice(-2000)}`);
      cpuMs += usage.cpuMs;
      rssBytes += usage.rssBytes;
    }
    return { cpuMs, rssBytes };
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
    return this.servers.flatMap((server) => serverProblems(server.logs));
  }
}

/** Server log entries at warn or above, and anything not JSON (Hocuspocus writes plain text to stderr). */
function serverProblems(logs: string): string[] {
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
