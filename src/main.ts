import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { createConcord } from './server.ts';

let config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`concord: ${error.message}`);
  process.exit(1);
}
const log = createLogger(config.LOG_LEVEL);

// Hocuspocus calls some hooks without awaiting them (NOTES); Concord's own
// never throw, and this keeps a stray rejection from ending every session.
process.on('unhandledRejection', (reason) => log.error({ err: reason, code: 'unhandled-rejection' }, 'unhandled promise rejection'));

let concord: Awaited<ReturnType<typeof createConcord>>;
let address;
try {
  concord = await createConcord(config, log);
  address = await concord.listen();
} catch (error) {
  log.fatal({ err: error, code: 'startup-failed' }, 'Concord could not start');
  console.error(`concord: could not start: ${(error as Error).message}`);
  process.exit(1);
}
const where = `${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`;
log.info(
  { port: address.port, host: address.address, database: config.DATABASE_URL ? 'postgres' : 'embedded' },
  `Concord listening on ws://${where} and http://${where}`,
);
if (!config.AUTH_JWT_SECRET && !config.AUTH_PUBLIC_KEY && !config.AUTH_JWKS_URL) {
  log.info(`development tokens: npm run token -- --tenant acme --user alice --role editor (signed with the secret in ${config.DATA_DIR}/dev-secret)`);
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
  await concord.close();
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
