import { Command, InvalidArgumentError, Option } from 'commander';
import { resolveTokenKey } from '../auth/keys.ts';
import { signToken } from '../auth/tokens.ts';
import { ConfigError, loadConfig, type Config } from '../config.ts';
import { type DocumentName } from '../documents/name.ts';
import { parseDocumentName } from '../documents/kinds.ts';
import { isPostgresTime } from '../documents/values.ts';
import { readVersion } from '../history/service.ts';
import { Versions } from '../history/versions.ts';
import { PostgresStorage } from '../storage/postgres.ts';
import { PostgresHistory } from '../storage/postgres-history.ts';
import { runCommand, withHistoryStore, type RunningServer } from './command.ts';

function seq(value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new InvalidArgumentError('a whole number (0 is the empty document)');
  return Number(value);
}

function time(value: string): Date {
  const at = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(at.getTime()) || !isPostgresTime(at)) {
    throw new InvalidArgumentError('an ISO time in the years 0001 to 9999, such as 2026-05-04T12:00:00Z');
  }
  return at;
}

type Which = { version: number } | { at: Date };

/**
 * While a server holds the embedded database, the version comes from its API
 * (GET …/versions/:seq or …/versions?at=), asked with a short-lived admin
 * token signed with the server's own secret.
 */
async function readFromServer(config: Config, server: RunningServer, document: DocumentName, which: Which): Promise<unknown> {
  const key = resolveTokenKey(config, { create: false });
  if (key.kind !== 'secret') {
    throw new ConfigError(`the server at ${server.url} holds the embedded database; ask it for the version (GET /api/documents/${document.kind}/${document.id}/versions/<seq>) with an admin token from your identity provider`);
  }
  const token = await signToken(key.secret, { tenant: document.tenant, userId: 'replay-cli', role: 'admin', ttl: '1m', issuer: config.AUTH_ISSUER, audience: config.AUTH_AUDIENCE });
  const path = `/api/documents/${document.kind}/${document.id}/versions`;
  const url = new URL('version' in which ? `${path}/${which.version}` : `${path}?at=${encodeURIComponent(which.at.toISOString())}`, server.url);
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  const body = (await response.json()) as { error?: { code: string; message: string } };
  if (!response.ok) throw new Error(`the server at ${server.url} answered ${body.error ? `${body.error.code}: ${body.error.message}` : response.status}`);
  return body;
}

const program = new Command('replay')
  .description(
    'Print a past version of a document in its JSON form, as GET /api/documents/:kind/:id/versions does. Reads the database; while a server holds the embedded database, asks that server',
  )
  .argument('<document>', '<tenant>/<kind>/<id>')
  .addOption(new Option('--version <seq>', 'the version after update <seq>').argParser(seq).conflicts('at'))
  .addOption(new Option('--at <time>', 'the version at that moment (ISO time)').argParser(time))
  .action(async (name: string, options: { version?: number; at?: Date }) => {
    const document = parseDocumentName(name);
    if (options.version === undefined && options.at === undefined) throw new InvalidArgumentError('say which version: --version <seq> or --at <time>');
    const which: Which = options.version !== undefined ? { version: options.version } : { at: options.at! };
    const config = loadConfig();
    const version = await withHistoryStore(
      config,
      (server) => readFromServer(config, server, document, which),
      async (db, checkpointer, log) => {
        // One read: no replica to keep.
        const versions = new Versions(new PostgresStorage(db), new PostgresHistory(db), checkpointer, log, 0);
        const seq = 'version' in which ? which.version : await versions.seqAt(document, which.at);
        return (await readVersion(versions, document, seq)).version;
      },
    );
    console.log(JSON.stringify(version, null, 2));
  });

await runCommand(program);
