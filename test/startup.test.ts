import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exportJWK, generateKeyPair, exportSPKI, SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, refusal, synced, waitFor } from './support/clients.ts';
import { createStorage } from './support/database.ts';
import { ServerProcess } from './support/server.ts';
import { token } from './support/tokens.ts';

const run = promisify(execFile);
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function storage(kind?: 'pglite') {
  const created = await createStorage(kind);
  cleanups.push(() => created.drop());
  return created;
}

async function serve(env: Record<string, string>) {
  const server = await new ServerProcess(env).start();
  cleanups.push(() => server.stop());
  return server;
}

async function connects(server: ServerProcess, jwt: string) {
  const client = connect(server.wsUrl, 'acme/quote/keys', jwt);
  await synced(client);
  client.provider.destroy();
}

function node(script: string, env: Record<string, string>, args: string[] = []) {
  return run(process.execPath, [script, ...args], { env: { ...process.env, AUTH_JWT_SECRET: '', NODE_ENV: 'development', ...env } });
}

describe('starting up', () => {
  it('refuses to start in production without a token key, and says why', async () => {
    const { env } = await storage();
    const failure = await node('src/main.ts', { ...env, NODE_ENV: 'production', PORT: '0' }).catch((error) => error);
    expect(failure.code).toBe(1);
    expect(failure.stderr).toMatch(/AUTH_JWT_SECRET, AUTH_PUBLIC_KEY or AUTH_JWKS_URL/);
  });

  it('without auth settings uses a development secret in DATA_DIR that npm run token signs with', async () => {
    const { env } = await storage();
    const server = await serve({ ...env, AUTH_JWT_SECRET: '' });
    // The hint passes the server's DATA_DIR on, so the token tool finds the same secret.
    await waitFor('the token hint', () => server.logs.includes(`TOKEN=$(DATA_DIR=${env.DATA_DIR} npm run -s token --`));
    const { stdout } = await node('src/cli/token.ts', env, ['--tenant', 'acme', '--user', 'alice', '--role', 'editor', '--ttl', '10m']);
    await connects(server, stdout.trim());
    expect(await refusal(server.wsUrl, 'acme/quote/keys', await token())).toBe('bad-token');
  });

  it('refuses a second live process on the same embedded database, in one line naming the process that holds it', async () => {
    const { env } = await storage('pglite');
    const first = await serve(env);
    const failure = await node('src/main.ts', { ...env, AUTH_JWT_SECRET: 'x'.repeat(32), PORT: '0' }).catch((error) => error);
    expect(failure.code).toBe(1);
    expect(failure.stderr).toBe(
      `concord: could not start: the embedded database in ${join(env.DATA_DIR!, 'pgdata')} is in use by process ${first.pid} on ${hostname()} (${first.httpUrl}): stop it first, or give this process its own DATA_DIR\n`,
    );
    expect((await first.get('/readyz')).status).toBe(200);
  });

  it('a port in use fails the start at once, before the database is opened, naming PORT; the next start is not held up', async () => {
    const { env, dataDir } = await storage('pglite');
    const taken = createNetServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = String((taken.address() as AddressInfo).port);
    cleanups.push(() => new Promise((resolve) => taken.close(() => resolve())));
    const failure = await node('src/main.ts', { ...env, PORT: port, HOST: '127.0.0.1' }).catch((error) => error);
    expect(failure.code).toBe(1);
    expect(failure.stderr).toBe(`concord: could not start: port ${port} on 127.0.0.1 is already in use (another Concord?): stop that process, or set PORT to a free port\n`);
    expect(failure.stdout).not.toMatch(/\n\s+at /);
    expect(existsSync(join(dataDir, 'pgdata'))).toBe(false);
    const next = await serve(env);
    expect(next.logs).not.toMatch(/database-in-use/);
  });

  it('an unreachable DATABASE_URL is retried with a line per retry, then fails in one line naming DATABASE_URL', async () => {
    const { env } = await storage('pglite');
    const nobody = createNetServer();
    await new Promise<void>((resolve) => nobody.listen(0, '127.0.0.1', resolve));
    const port = (nobody.address() as AddressInfo).port;
    await new Promise((resolve) => nobody.close(resolve));
    const failure = await node('src/main.ts', { ...env, PORT: '0', DATABASE_URL: `postgres://concord:secret@127.0.0.1:${port}/concord`, DATABASE_WAIT_MS: '2500' }).catch((error) => error);
    expect(failure.code).toBe(1);
    const retries = failure.stdout.split('\n').filter((line: string) => line.includes('"code":"database-unreachable"'));
    expect(retries.length).toBeGreaterThanOrEqual(1);
    expect(retries[0]).toMatch(new RegExp(`PostgreSQL at 127.0.0.1:${port}/concord \\(DATABASE_URL\\) does not answer: connect ECONNREFUSED.*retrying in`));
    expect(failure.stderr).toMatch(new RegExp(`^concord: could not start: PostgreSQL at 127.0.0.1:${port}/concord \\(DATABASE_URL\\) does not answer: .*Check that it runs and that DATABASE_URL is right.*\n$`));
    expect(failure.stdout + failure.stderr).not.toMatch(/secret/);
  });

  it('METRICS_PORT serves /metrics on its own bind and takes it off the public port', async () => {
    const { env } = await storage();
    const probe = createNetServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const metricsPort = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const server = await serve({ ...env, METRICS_PORT: String(metricsPort), METRICS_HOST: '127.0.0.1' });
    expect((await server.get('/metrics')).status).toBe(404);
    const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(scraped.status).toBe(200);
    expect(await scraped.text()).toMatch(/^concord_/m);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(404);
    expect((await server.get('/healthz')).status).toBe(200);
  });

  it('GET / is a page that says how to connect and links the admin page', async () => {
    const { env } = await storage();
    const server = await serve(env);
    const response = await server.get('/');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const page = await response.text();
    expect(page).toContain('href="/admin"');
    expect(page).toContain(`url: '${server.wsUrl}'`);
    expect(page).toContain('npm run -s token --');
    expect(page).toContain('npm run example:quote');
  });

  it('at a terminal, prints a banner with the URL, the copyable token command and /admin instead of JSON lines', async () => {
    const { env, dataDir } = await storage('pglite');
    // `script` gives the server a terminal, as a person running npm start has.
    const child = spawn('script', ['-qfec', `${process.execPath} src/main.ts`, '/dev/null'], {
      env: { ...process.env, ...env, AUTH_JWT_SECRET: '', NODE_ENV: 'development', PORT: '0', HOST: '127.0.0.1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    cleanups.push(async () => {
      if (child.exitCode !== null) return;
      // The server (script's child) wrote its pid down once it held the database; ending it ends script.
      const holder = existsSync(join(dataDir, 'pgdata.holder.json')) ? JSON.parse(readFileSync(join(dataDir, 'pgdata.holder.json'), 'utf8')) : null;
      if (holder) process.kill(holder.pid, 'SIGTERM');
      else child.kill('SIGTERM');
      await once(child, 'exit');
    });
    await waitFor('the banner', () => output.includes('Ctrl-C stops the server'), 60_000);
    const url = /Concord is running on (http:\/\/127\.0\.0\.1:\d+) /.exec(output)?.[1];
    expect(url).toBeDefined();
    expect(output).toContain(`TOKEN=$(DATA_DIR=${dataDir} npm run -s token -- --tenant acme --user alice --role editor --name Alice)`);
    expect(output).toContain(`signed with the development secret in ${join(dataDir, 'dev-secret')}`);
    expect(output).toContain(`${url}/admin`);
    expect(output).toContain('npm run example -- "$TOKEN" acme/quote/q-1001');
    expect(output).toContain('npm run example:quote');
    expect(output).not.toMatch(/"msg":"Concord listening/);
  });

  it('npm run migrate applies the schema once', async () => {
    const { env } = await storage();
    expect((await node('src/cli/migrate.ts', env)).stdout).toMatch(/applied: 001_documents\.sql/);
    expect((await node('src/cli/migrate.ts', env)).stdout).toMatch(/up to date/);
  });
});

describe('token keys', () => {
  it('verifies tokens signed for AUTH_PUBLIC_KEY (PEM) and checks issuer and audience', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const { env } = await storage();
    const server = await serve({ ...env, AUTH_JWT_SECRET: '', AUTH_PUBLIC_KEY: await exportSPKI(publicKey), AUTH_ISSUER: 'https://id.example', AUTH_AUDIENCE: 'concord' });
    const sign = (issuer: string) =>
      new SignJWT({ tenant: 'acme', role: 'editor' })
        .setProtectedHeader({ alg: 'ES256' })
        .setSubject('alice')
        .setIssuer(issuer)
        .setAudience('concord')
        .setExpirationTime('5m')
        .sign(privateKey);
    await connects(server, await sign('https://id.example'));
    expect(await refusal(server.wsUrl, 'acme/quote/keys', await sign('https://other.example'))).toBe('bad-token');
    expect(await refusal(server.wsUrl, 'acme/quote/keys', await token())).toBe('bad-token');
  });

  it('verifies tokens against AUTH_JWKS_URL', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const jwks: Server = createServer((_, response) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => jwks.close(() => resolve())));
    const { env } = await storage();
    const server = await serve({ ...env, AUTH_JWT_SECRET: '', AUTH_JWKS_URL: `http://127.0.0.1:${(jwks.address() as { port: number }).port}/jwks.json` });
    const signed = await new SignJWT({ tenant: 'acme', role: 'viewer' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('bob').setExpirationTime('5m').sign(privateKey);
    await connects(server, signed);
  });
});
