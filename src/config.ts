import { z } from 'zod';

const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === '' ? undefined : value));
const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const nonNegativeInt = (fallback: number) => z.coerce.number().int().min(0).default(fallback);
const port = () => z.coerce.number<string | undefined>().int().min(0).max(65535);

/** One NATS server or several, comma-separated: `nats://host:port` (or `host:port`). */
const natsServers = /^(nats:\/\/)?[^\s,/@]+(,\s*(nats:\/\/)?[^\s,/@]+)*$/;

/** Where the embedded database and the development secret live unless DATA_DIR says otherwise. */
export const DEFAULT_DATA_DIR = './data';

const environment = z.object({
  NODE_ENV: z.string().default('development'),
  PORT: port().default(8787),
  HOST: z.string().default('127.0.0.1'),
  /** Serve /metrics on this port (and only there) instead of on PORT; unset keeps it on PORT. */
  METRICS_PORT: optionalText.pipe(port().optional()),
  /** The address METRICS_PORT binds to: keep it private. */
  METRICS_HOST: z.string().default('127.0.0.1'),
  DATABASE_URL: optionalText,
  /** At start, how long an unanswering PostgreSQL (DATABASE_URL) is retried before the start gives up. */
  DATABASE_WAIT_MS: nonNegativeInt(15_000),
  /** The owner role that applies migrations; DATABASE_URL's role then only needs membership in concord_app. */
  MIGRATION_DATABASE_URL: optionalText,
  DATA_DIR: z.string().default(DEFAULT_DATA_DIR),
  /** Redis for running several instances; unset means one instance. */
  REDIS_URL: optionalText.pipe(z.url({ protocol: /^rediss?$/ }).optional()),
  /** This instance's name in Redis and in presence; unset means host, pid and a random suffix. */
  INSTANCE_ID: optionalText.pipe(z.string().regex(/^[\w.-]{1,64}$/, 'letters, digits, ".", "_" or "-", at most 64').optional()),
  /** A user whose connection sent no edit and no awareness change for this long shows as `idle`. */
  PRESENCE_IDLE_MS: positiveInt(60_000),
  /** How long a lock holds when its taker names no ttlSeconds (docs/locks.md). */
  LOCK_TTL_SECONDS: positiveInt(60),
  /** The longest ttlSeconds a lock may be taken for; a longer one is refused. */
  LOCK_MAX_TTL_SECONDS: positiveInt(600),
  AUTH_JWT_SECRET: optionalText,
  AUTH_PUBLIC_KEY: optionalText,
  AUTH_JWKS_URL: optionalText.pipe(z.url().optional()),
  AUTH_ISSUER: optionalText,
  AUTH_AUDIENCE: optionalText,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Largest WebSocket message accepted; larger ones close the socket (1009). */
  MAX_MESSAGE_BYTES: positiveInt(4 * 1024 * 1024),
  /** Messages a socket may send per second (all documents on it, writes included); see SOCKET_MESSAGE_BURST. */
  SOCKET_MESSAGES_PER_SECOND: positiveInt(200),
  /** Messages a socket may send beyond its rate, per 10 s: room for bursts such as opening many documents at once. */
  SOCKET_MESSAGE_BURST: positiveInt(1000),
  /** Bytes a socket may send per second; see SOCKET_BYTE_BURST. */
  SOCKET_BYTES_PER_SECOND: positiveInt(1024 * 1024),
  /** Bytes a socket may send beyond its rate, per 10 s; at least MAX_MESSAGE_BYTES, so that one largest message always fits. */
  SOCKET_BYTE_BURST: positiveInt(8 * 1024 * 1024),
  /** Bytes sent to a socket that its client has not read yet (they wait in memory); past them the socket's messages wait until it has read. */
  SOCKET_UNSENT_MAX_BYTES: positiveInt(1024 * 1024),
  /** A client over SOCKET_UNSENT_MAX_BYTES that reads nothing for this long is cut off. */
  SOCKET_STALL_TIMEOUT_MS: positiveInt(30_000),
  /** A socket that has not authenticated any document this long after it opened is closed. */
  UNAUTHENTICATED_TIMEOUT_MS: positiveInt(10_000),
  /** A checkpoint is written once a document has this many updates after its last one. */
  CHECKPOINT_EVERY: positiveInt(500),
  /** The checkpoint worker keeps the documents it built last, up to this many bytes of their encoded state, and builds their next checkpoint from the updates since; 0 keeps none. */
  CHECKPOINT_KEEP_BYTES: nonNegativeInt(4 * 1024 * 1024),
  /** A pause longer than this ends a burst of typing: the next text edit starts a new audit row. */
  AUDIT_TEXT_BURST_MS: positiveInt(5000),
  /** Most updates one burst's audit row covers; the next text edit starts a new row (each commit rewrites the open row, so it must stay small). */
  AUDIT_TEXT_BURST_MAX_UPDATES: positiveInt(100),
  /** Most updates written in one group commit. */
  COMMIT_BATCH_MAX: positiveInt(2000),
  /** Past this many bytes of uncommitted updates (Postgres away), new writes are refused. */
  MAX_BACKLOG_BYTES: positiveInt(256 * 1024 * 1024),
  /** Most bytes of client writes one document may hold parked (Yjs pending: their dependencies never arrived; a deleted range counts 64); beyond, refused. */
  MAX_PENDING_BYTES: positiveInt(1024 * 1024),
  /** Most client writes one document may hold parked (each makes Yjs merge all that is pending). */
  MAX_PENDING_WRITES: positiveInt(1000),
  /** Longest a parked write may wait for what it depends on; then the document's pending writes are dropped. */
  MAX_PENDING_AGE_MS: positiveInt(30_000),
  /** Most Yjs clientIDs new to a document that one update may write under (each is claimed for good in document_clients). */
  MAX_NEW_CLIENTS_PER_UPDATE: positiveInt(64),
  /** Most update bytes written in one group commit. */
  COMMIT_BATCH_MAX_BYTES: positiveInt(8 * 1024 * 1024),
  /**
   * Awareness updates one document connection may send per second, one per 1/rate s; past it (and the burst) an
   * update is held (`rate-limited`), the connection's latest going once the rate allows. Providers send one per cursor move.
   */
  AWARENESS_UPDATES_PER_SECOND: positiveInt(20),
  /** Awareness updates a connection may send beyond the rate, coming back over 10 s (a burst of cursor moves). */
  AWARENESS_UPDATES_BURST: positiveInt(100),
  /** Largest awareness state of one client, in bytes of its JSON; an update carrying a larger one is dropped. */
  AWARENESS_STATE_MAX_BYTES: positiveInt(16 * 1024),
  /** Most documents one WebSocket may have open (authenticated) at once. */
  MAX_DOCUMENTS_PER_SOCKET: positiveInt(50),
  /** Most documents one user may have open at once (over all sockets; over all instances with Redis). */
  MAX_CONNECTIONS_PER_USER: positiveInt(200),
  /** Most documents one tenant's users may have open at once (over all instances with Redis). */
  MAX_CONNECTIONS_PER_TENANT: positiveInt(20_000),
  /** Sync requests (sync step 1, each answered with all the sender lacks) per document connection per window; providers send one per connect. */
  SYNC_REQUESTS_PER_WINDOW: positiveInt(20),
  /** Sync requests one user may send per window over all their connections (all instances, with Redis); a provider sends one per connect. */
  SYNC_REQUESTS_PER_USER_PER_WINDOW: positiveInt(400),
  /** The window of SYNC_REQUESTS_PER_WINDOW and SYNC_REQUESTS_PER_USER_PER_WINDOW, in seconds. */
  SYNC_WINDOW_SECONDS: positiveInt(60),
  /** HTTP requests per minute per user (tenant and subject of the token), cluster-wide with Redis. */
  HTTP_REQUESTS_PER_MINUTE: positiveInt(600),
  /** HTTP requests per minute per client address without a valid token (none, or a refused one). */
  HTTP_ANONYMOUS_REQUESTS_PER_MINUTE: positiveInt(120),
  /** Documents whose whole history is kept in memory for fast version reads (0: every read from checkpoint and tail). */
  HISTORY_REPLICAS: z.coerce.number().int().min(0).max(1000).default(4),
  /** Updates older than this many days are pruned down to checkpoints; unset keeps everything. */
  HISTORY_RETENTION_DAYS: optionalText.pipe(z.coerce.number<string | undefined>().int().min(1).max(36_500).optional()),

  // Change events (src/events, docs/events.md).
  /** Events older than this many days are pruned; a cursor from before them gets 410 `cursor-expired`. */
  EVENTS_RETENTION_DAYS: z.coerce.number().int().min(1).max(36_500).default(30),
  /** How often waiting readers, webhooks and NATS look for events other instances committed (this instance's wake them at once). */
  EVENTS_POLL_MS: z.coerce.number().int().min(50).max(60_000).default(1_000),
  /** Most readers of one tenant's events waiting at once on one instance (long polls and streams); more get `rate-limited`. */
  EVENTS_MAX_WAITING_PER_TENANT: positiveInt(50),

  // Webhooks (src/webhooks, docs/webhooks.md).
  /** Allow webhook endpoints on loopback, private, link-local and other non-public addresses (server-side request forgery otherwise). */
  WEBHOOK_ALLOW_PRIVATE: z.enum(['true', 'false']).default('false').transform((value) => value === 'true'),
  /** Longest a webhook request may take, connecting through reading the answer; then it is retried. */
  WEBHOOK_TIMEOUT_MS: positiveInt(10_000),
  /** Documents whose deliveries go to one endpoint at once (one delivery at a time per document). */
  WEBHOOK_CONCURRENCY: positiveInt(8),
  /** Seconds before each retry of a failed delivery (less up to a fifth, jitter); after the last, the delivery is dead-lettered. */
  WEBHOOK_RETRY_SCHEDULE: z
    .string()
    .default('5,30,120,600,1800,3600,7200,14400,28800,36000')
    .pipe(z.string().regex(/^\d+(\.\d+)?(,\d+(\.\d+)?)*$/, 'comma-separated seconds'))
    .transform((value) => value.split(',').map(Number)),
  /** An endpoint whose deliveries are dead-lettered this many times in a row (no success between) is disabled. */
  WEBHOOK_DISABLE_AFTER: positiveInt(10),
  /** Past this many pending deliveries an endpoint gets no new ones until some are done (a dead receiver does not grow the log without bound). */
  WEBHOOK_MAX_PENDING: positiveInt(1000),
  // NATS JetStream (src/events/nats.ts, docs/nats.md).
  /** NATS servers to publish every change event to (`nats://host:4222`, several comma-separated); unset: no NATS. */
  NATS_URL: optionalText.pipe(z.string().regex(natsServers, 'nats://host:port, several comma-separated').optional()),
  /** NATS user and password, when the server asks for them (set both). */
  NATS_USER: optionalText,
  NATS_PASSWORD: optionalText,
  /** NATS token, when the server authenticates by token (instead of NATS_USER and NATS_PASSWORD). */
  NATS_TOKEN: optionalText,
  /** The JetStream stream events go to; created over `concord.>` when missing. */
  NATS_STREAM: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, "_" or "-", at most 64').default('concord'),
});

export type Config = z.infer<typeof environment>;

/** Every environment variable Concord reads. */
export const settingNames = Object.keys(environment.shape);

/** A setting that keeps Concord from starting or a command from running; the message names it and the fix. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = environment.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid settings: ${problems.join('; ')}`);
  }
  const config = parsed.data;
  const keys = [config.AUTH_JWT_SECRET, config.AUTH_PUBLIC_KEY, config.AUTH_JWKS_URL].filter(Boolean);
  if (keys.length > 1) {
    throw new ConfigError('set only one of AUTH_JWT_SECRET, AUTH_PUBLIC_KEY, AUTH_JWKS_URL');
  }
  if (keys.length === 0 && config.NODE_ENV === 'production') {
    throw new ConfigError(
      'no token key configured: in production set AUTH_JWT_SECRET, AUTH_PUBLIC_KEY or AUTH_JWKS_URL (the generated development secret is refused when NODE_ENV=production)',
    );
  }
  if (config.MIGRATION_DATABASE_URL && !config.DATABASE_URL) {
    throw new ConfigError('MIGRATION_DATABASE_URL needs DATABASE_URL (the embedded database has no roles to separate)');
  }
  if (config.METRICS_PORT !== undefined && config.METRICS_PORT !== 0 && config.METRICS_PORT === config.PORT) {
    throw new ConfigError(`METRICS_PORT must differ from PORT (${config.PORT}): it keeps /metrics off the public port`);
  }
  if (config.SOCKET_BYTE_BURST < config.MAX_MESSAGE_BYTES) {
    throw new ConfigError('SOCKET_BYTE_BURST must be at least MAX_MESSAGE_BYTES (a socket must be able to send one largest message)');
  }
  if (!config.NATS_USER !== !config.NATS_PASSWORD) {
    throw new ConfigError('set NATS_USER and NATS_PASSWORD together');
  }
  if (config.NATS_TOKEN && config.NATS_USER) {
    throw new ConfigError('set NATS_TOKEN or NATS_USER and NATS_PASSWORD, not both');
  }
  if (config.LOCK_TTL_SECONDS > config.LOCK_MAX_TTL_SECONDS) {
    throw new ConfigError(`LOCK_TTL_SECONDS (${config.LOCK_TTL_SECONDS}) must not exceed LOCK_MAX_TTL_SECONDS (${config.LOCK_MAX_TTL_SECONDS})`);
  }
  if (config.AUTH_JWT_SECRET && config.AUTH_JWT_SECRET.length < 32) {
    throw new ConfigError('AUTH_JWT_SECRET must be at least 32 characters');
  }
  return config;
}
