// First, before anything loads lib0: see the module.
import './random-values.ts';
import { Command } from 'commander';
import { reachableUrl, startBanner, tokenHint } from './banner.ts';
import { ConfigError, loadConfig } from './config.ts';
import { announceServer, DatabaseInUseError } from './db/pglite.ts';
import { ensureFree } from './http/bind.ts';
import { createLogger } from './log.ts';
import { embeddedDatabaseDirectory } from './database.ts';
import { createConcord, metricsBind, publicBind } from './server.ts';

// Every setting is an environment variable; the command line only answers --help.
new Command('npm start --')
  .description(
    'Runs the Concord server: on the embedded database in DATA_DIR (./data) by default, on PostgreSQL with DATABASE_URL. ' +
      'Every setting is an environment variable, listed in docs/configuration.md.',
  )
  .allowExcessArguments(false)
  .parse();

let config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`concord: ${error.message}`);
  process.exit(1);
}
const log = createLogger(config.LOG_LEVEL);
// A person at a terminal gets a short banner; logs collectors (not a TTY) get JSON lines only.
const atTerminal = process.stdout.isTTY === true;

// Hocuspocus calls some hooks without awaiting them; Concord's own
// never throw, and this keeps a stray rejection from ending every session.
process.on('unhandledRejection', (reason) => log.error({ err: reason, code: 'unhandled-rejection' }, 'unhandled promise rejection'));

let concord: Awaited<ReturnType<typeof createConcord>> | undefined;
let addresses;
try {
  // Ports first: a port in use is known at once, not after opening and migrating the database.
  for (const bind of [publicBind(config), metricsBind(config)]) if (bind) await ensureFree(bind);
  concord = await createConcord(config, log);
  addresses = await concord.listen();
} catch (error) {
  await concord?.close();
  // A setting to fix is said in one line, naming it; anything else is a bug, logged with its stack.
  const known = error instanceof ConfigError || error instanceof DatabaseInUseError;
  if (known && !atTerminal) log.fatal({ code: 'startup-failed', reason: (error as Error).message }, 'Concord could not start');
  if (!known) log.fatal({ err: error, code: 'startup-failed' }, 'Concord could not start');
  console.error(`concord: could not start: ${(error as Error).message}`);
  process.exit(1);
}
const { address, metricsAddress } = addresses;
if (!config.DATABASE_URL) announceServer(embeddedDatabaseDirectory(config), reachableUrl(address));
if (atTerminal) {
  process.stdout.write(startBanner(config, address, metricsAddress));
} else {
  const where = `${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`;
  log.info(
    { port: address.port, host: address.address, metricsPort: metricsAddress?.port, database: config.DATABASE_URL ? 'postgres' : 'embedded' },
    `Concord listening on ws://${where} and http://${where}`,
  );
  const token = tokenHint(config);
  if (token && !config.AUTH_JWT_SECRET) log.info(`development tokens: ${token.command} (signed with ${token.signedWith})`);
}

const SHUTDOWN_DEADLINE_MS = 25_000;
let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down');
  // Every step of closing is bounded; this is the last resort should one still hang.
  setTimeout(() => {
    log.error({ code: 'shutdown-timeout' }, 'shutdown did not finish in time; exiting');
    process.exit(1);
  }, SHUTDOWN_DEADLINE_MS).unref();
  await concord!.close();
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
