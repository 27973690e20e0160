import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acknowledged, connect, synced } from './support/clients.ts';
import { runCli, runScript } from './support/cli.ts';
import { perTestCleanups } from './support/cleanups.ts';
import { addLine, api } from './support/documents.ts';
import { ServerProcess } from './support/server.ts';
import { token } from './support/tokens.ts';

const { later, pgliteStorage, track } = perTestCleanups();

async function serve(env: Record<string, string>) {
  return track(await new ServerProcess(env).start());
}

/** A refusal: status 1 and one human line on stderr, without an error class's name. */
function expectOneLineRefusal(result: { code: number; stderr: string }, command: string, reason: RegExp) {
  expect(result.code).toBe(1);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(new RegExp(`^${command}: `));
  expect(result.stderr).toMatch(reason);
  expect(result.stderr).not.toMatch(/\w+Error\b|\n\s+at /);
}

describe('command-line tools', () => {
  it('every npm script that runs a file answers --help with its usage and does nothing else: the tools, the server, the examples, the benchmark', async () => {
    const { env, dataDir } = await pgliteStorage();
    const scripts = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts;
    const files = Object.entries(scripts).flatMap(([script, command]) => {
      const file = /^node (?:--\S+ )*(\S+\.ts)$/.exec(command)?.[1];
      return file ? [{ script, file }] : [];
    });
    expect(files.map(({ script }) => script)).toEqual(expect.arrayContaining(['migrate', 'replay', 'prune', 'token', 'start', 'example', 'example:merge', 'example:webhooks', 'bench']));
    for (const { script, file } of files) {
      const help = await runScript(file, ['--help'], env);
      expect({ script, code: help.code, stderr: help.stderr }).toEqual({ script, code: 0, stderr: '' });
      // A tool's usage names it.
      const tool = /^src\/cli\/(\w+)\.ts$/.exec(file)?.[1];
      expect(help.stdout).toMatch(tool ? new RegExp(`^Usage: ${tool}\\b`) : /^Usage: /);
    }
    // Nothing was opened or created: npm start --help started nothing, migrate --help did not migrate, token --help made no secret.
    expect(readdirSync(dataDir)).toEqual([]);
  });

  it('while the server runs on the embedded database, replay reads through its API; migrate and prune say what the server does', async () => {
    const { env } = await pgliteStorage();
    const server = await serve(env);
    const name = 'acme/quote/replayed';
    const rosa = connect(server.wsUrl, name, await token({ sub: 'rosa' }));
    later(() => rosa.provider.destroy());
    await synced(rosa);
    rosa.doc.getMap('quote').set('title', 'First');
    await acknowledged(rosa);
    const between = new Date();
    await new Promise((resolve) => setTimeout(resolve, 5));
    addLine(rosa.doc, { id: 'l1', quantity: 3, unitPrice: 0.335 });
    await acknowledged(rosa);

    const admin = await token({ role: 'admin' });
    for (const [args, seq] of [[['--version', '1'], 1], [['--version', '2'], 2], [['--at', between.toISOString()], 1]] as const) {
      const printed = await runCli('replay', [name, ...args], env);
      expect({ args, code: printed.code, stderr: printed.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(JSON.parse(printed.stdout)).toEqual((await api(server.httpUrl, admin, 'GET', `/api/documents/quote/replayed/versions/${seq}`)).body);
    }
    expectOneLineRefusal(await runCli('replay', [name, '--version', '3'], env), 'replay', new RegExp(`the server at ${server.httpUrl} answered not-found: .*latest is 2`));

    const migrate = await runCli('migrate', [], env);
    expect(migrate.code).toBe(0);
    expect(migrate.stdout).toMatch(new RegExp(`the server at ${server.httpUrl} \\(process ${server.pid}\\) .*applied the migrations`));

    expectOneLineRefusal(await runCli('prune', ['--older-than-days', '30'], env), 'prune', /holds the embedded database: it prunes by itself.*stop it to prune now/);
    expect((await server.get('/readyz')).status).toBe(200);
  });

  it('once the server is stopped, the same tools open the embedded database themselves', async () => {
    const { env } = await pgliteStorage();
    const server = await serve(env);
    const alice = connect(server.wsUrl, 'acme/quote/later', await token());
    await synced(alice);
    alice.doc.getMap('quote').set('title', 'Kept');
    await acknowledged(alice);
    alice.provider.destroy();
    const live = await api(server.httpUrl, await token({ role: 'admin' }), 'GET', '/api/documents/quote/later/versions/1');
    await server.stop();

    const printed = await runCli('replay', ['acme/quote/later', '--version', '1'], env);
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.stdout)).toEqual(live.body);
    expect((await runCli('migrate', [], env)).stdout).toMatch(/the schema is up to date/);
  });

  it('token signs with the secret the server created and says which on stderr; it never creates one of its own', async () => {
    const { env, dataDir } = await pgliteStorage();
    const mint = ['--tenant', 'acme', '--user', 'alice', '--role', 'editor'];
    const noSecret = { ...env, AUTH_JWT_SECRET: '' };

    expectOneLineRefusal(await runCli('token', mint, noSecret), 'token', new RegExp(`no development secret in ${join(dataDir, 'dev-secret')}: the server creates it`));
    expect(existsSync(join(dataDir, 'dev-secret'))).toBe(false);

    const server = await serve(noSecret);
    const minted = await runCli('token', mint, noSecret);
    expect(minted.code).toBe(0);
    expect(minted.stderr).toBe(`token: signed with the development secret in ${join(dataDir, 'dev-secret')}\n`);
    const client = connect(server.wsUrl, 'acme/quote/minted', minted.stdout.trim());
    later(() => client.provider.destroy());
    await synced(client);

    const withSecret = await runCli('token', mint, env);
    expect(withSecret.stderr).toBe('token: signed with AUTH_JWT_SECRET\n');
  });

  it('bad arguments and settings get one line each', async () => {
    const { env } = await pgliteStorage();
    expectOneLineRefusal(await runCli('replay', ['not-a-name', '--version', '1'], env), 'replay', /bad-document-name/);
    expectOneLineRefusal(await runCli('migrate', ['extra'], env), 'migrate', /too many arguments/);
    expectOneLineRefusal(await runCli('migrate', [], { ...env, DATABASE_URL: 'postgres://concord:concord@127.0.0.1:1/none', DATABASE_WAIT_MS: '0' }), 'migrate', /DATABASE_URL/);
  });
});
