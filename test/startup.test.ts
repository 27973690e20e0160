import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
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
    await waitFor('the token hint', () => server.logs.includes('npm run token --'));
    const { stdout } = await node('src/cli/token.ts', env, ['--tenant', 'acme', '--user', 'alice', '--role', 'editor', '--ttl', '10m']);
    await connects(server, stdout.trim());
    expect(await refusal(server.wsUrl, 'acme/quote/keys', await token())).toBe('bad-token');
  });

  it('refuses a second process on the same embedded database, and says which process holds it', async () => {
    const { env } = await storage('pglite');
    const first = await serve(env);
    const failure = await node('src/main.ts', { ...env, AUTH_JWT_SECRET: 'x'.repeat(32), PORT: '0' }).catch((error) => error);
    expect(failure.code).toBe(1);
    expect(failure.stderr).toMatch(/in use by process \d+/);
    expect((await node('src/cli/migrate.ts', env).catch((error) => error)).stderr).toMatch(/in use by process/);
    expect((await first.get('/readyz')).status).toBe(200);
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
