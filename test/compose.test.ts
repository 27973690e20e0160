import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig, settingNames } from '../src/config.ts';

const root = new URL('../', import.meta.url);
const compose = parse(readFileSync(new URL('docker-compose.yml', root), 'utf8'), { merge: true });
const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8');
/** The service that builds Concord's image, and every service that runs that image. */
const builders = Object.entries<any>(compose.services).filter(([, service]) => service.build !== undefined);
const concordImage = builders[0]?.[1].image;
const instances = Object.entries<any>(compose.services).filter(([, service]) => service.image === concordImage);
const publishedPorts = (service: any): string[] => service.ports.map((port: string) => port.split(':')[1]);
/** The image's own environment (Dockerfile ENV), which the compose file adds to. */
const imageEnv = Object.fromEntries([...dockerfile.matchAll(/^\s*(?:ENV\s+)?([A-Z_]+)=(\S+?)\s*\\?$/gm)].map((match) => [match[1]!, match[2]!]));

// docker-compose.yml cannot be run here (no Docker engine): it is checked against the settings and the Dockerfile instead.
describe('docker-compose.yml', () => {
  it('runs two instances of the image with distinct identities, sharing its PostgreSQL and Redis', () => {
    expect(instances).toHaveLength(2);
    expect(new Set(instances.map(([, service]) => service.environment.INSTANCE_ID)).size).toBe(2);
    for (const [, service] of instances) {
      const database = new URL(service.environment.DATABASE_URL);
      const redis = new URL(service.environment.REDIS_URL);
      expect(compose.services[database.hostname]?.image).toMatch(/^postgres:/);
      expect(compose.services[redis.hostname]?.image).toMatch(/^redis:/);
      expect(Object.keys(service.depends_on).sort()).toEqual([database.hostname, redis.hostname].sort());
      expect(publishedPorts(service)).toEqual([imageEnv.PORT]);
    }
    expect(new Set(instances.flatMap(([, service]) => service.ports.map((port: string) => port.split(':')[0]))).size).toBe(2);
  });

  it('logs in as a role the production start accepts (no superuser, a member of concord_app) and migrates as the image\'s superuser', () => {
    const postgres = compose.services.postgres;
    const roles = readFileSync(new URL('docker/postgres-roles.sql', root), 'utf8');
    expect(postgres.volumes).toContain('./docker/postgres-roles.sql:/docker-entrypoint-initdb.d/concord-roles.sql:ro');
    for (const [, service] of instances) {
      const login = new URL(service.environment.DATABASE_URL).username;
      expect(login).not.toBe(postgres.environment.POSTGRES_USER);
      // Exactly this line: no SUPERUSER or BYPASSRLS on it.
      expect(roles).toMatch(new RegExp(`^CREATE ROLE ${login} LOGIN PASSWORD '${new URL(service.environment.DATABASE_URL).password}' IN ROLE concord_app;$`, 'm'));
      expect(new URL(service.environment.MIGRATION_DATABASE_URL).username).toBe(postgres.environment.POSTGRES_USER);
    }
  });

  it('builds the image once: one service builds it from this directory, the other runs it and never pulls it', () => {
    expect(builders.map(([, service]) => service.build)).toEqual(['.']);
    expect(concordImage).toMatch(/^concord:/);
    for (const [, service] of instances.filter(([, service]) => service.build === undefined)) expect(service.pull_policy).toBe('never');
  });

  it('keeps the token secret in .env, which git and the image never hold, so tokens can be minted later', () => {
    const example = readFileSync(new URL('.env.example', root), 'utf8');
    expect(example).toMatch(/^AUTH_JWT_SECRET=$/m);
    const ignored = (file: string) => readFileSync(new URL(file, root), 'utf8').split('\n').map((line) => line.trim());
    expect(ignored('.gitignore')).toContain('.env');
    expect(ignored('.dockerignore')).toContain('.env');
    for (const [, service] of instances) {
      // Compose fills ${...} from .env; a missing secret stops `docker compose up` with this message.
      expect(service.environment.AUTH_JWT_SECRET).toMatch(/^\$\{AUTH_JWT_SECRET:\?[^}]*\.env[^}]*\}$/);
    }
  });

  it('serves /metrics on a port of its own that nothing publishes', () => {
    expect(imageEnv.METRICS_PORT).toBeDefined();
    expect(imageEnv.METRICS_PORT).not.toBe(imageEnv.PORT);
    expect([...dockerfile.matchAll(/^EXPOSE\s+(.+)$/gm)].flatMap((match) => match[1]!.split(/\s+/))).toEqual([imageEnv.PORT]);
    for (const [, service] of instances) {
      const config = loadConfig({ ...imageEnv, ...service.environment, AUTH_JWT_SECRET: 'a-secret-of-at-least-32-characters!' });
      expect(config.METRICS_PORT).toBe(Number(imageEnv.METRICS_PORT));
      expect(publishedPorts(service)).not.toContain(imageEnv.METRICS_PORT);
    }
  });

  it('sets only settings Concord reads, and they load as they would in the container', () => {
    expect(imageEnv).toMatchObject({ NODE_ENV: 'production', HOST: '0.0.0.0' });
    for (const [, service] of instances) {
      for (const name of Object.keys(service.environment)) expect(settingNames).toContain(name);
      const env = { ...imageEnv, ...service.environment, AUTH_JWT_SECRET: 'a-secret-of-at-least-32-characters!' };
      expect(() => loadConfig(env)).not.toThrow();
    }
  });
});

describe('the image', () => {
  it("starts the server as `npm start` does, with the same Node flags (the benchmark's servers take them from there too)", () => {
    const start = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')).scripts.start.split(/\s+/);
    const cmd = [...dockerfile.matchAll(/^CMD\s+(\[.*\])$/gm)].map((match) => JSON.parse(match[1]!) as string[]);
    expect(cmd).toEqual([start]);
  });
});
