import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Database as DatabaseExtension } from '@hocuspocus/extension-database';
import { Hocuspocus } from '@hocuspocus/server';
import { getRequestListener } from '@hono/node-server';
import { WebSocketServer } from 'ws';
import { ClientOwners } from './auth/client-owners.ts';
import { Authorization } from './auth/extension.ts';
import { resolveTokenKey } from './auth/keys.ts';
import { createTokenVerifier } from './auth/tokens.ts';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';
import { refuseRlsBypassingLogin } from './db/login-role.ts';
import { migrate } from './db/migrate.ts';
import { createPgliteDatabase } from './db/pglite.ts';
import { createPostgresDatabase } from './db/postgres.ts';
import { parseDocumentName } from './documents/name.ts';
import { createHttpApp } from './http/app.ts';
import { adminPage } from './http/admin-page.ts';
import { documentsApi } from './http/api.ts';
import { documentRoutes } from './http/documents.ts';
import { historyRoutes } from './http/history.ts';
import { requestLimits } from './http/request-limits.ts';
import { DocumentService } from './documents/service.ts';
import type { Logger } from './log.ts';
import { createMetrics } from './metrics.ts';
import { Checkpointer } from './persistence/checkpoints.ts';
import { DocumentStore } from './persistence/document-store.ts';
import { Persistence, type RelayedContent } from './persistence/extension.ts';
import { UpdateLog } from './persistence/update-log.ts';
import { AuditTrail } from './audit/trail.ts';
import { HistoryRetention, type PruneTarget } from './history/retention.ts';
import { HistoryService } from './history/service.ts';
import { Versions } from './history/versions.ts';
import { connectRedis, instanceIdentity, watchResponsiveness } from './cluster/redis.ts';
import { ensureUniqueIdentity, InstanceRelay } from './cluster/relay.ts';
import { LogFollower } from './persistence/log-follower.ts';
import { UnloggedBeacon } from './cluster/unlogged-beacon.ts';
import { Presence } from './presence/presence.ts';
import { RedisPresenceBoard } from './presence/redis-board.ts';
import { RelayedRows } from './projection/relayed-rows.ts';
import { createSocketLimits, SocketSession, unauthenticatedQueue } from './socket/session.ts';
import { Recorder } from './projection/recorder.ts';
import { within } from './timeouts.ts';

const SHUTDOWN_DRAIN_MS = 10_000;
const REDIS_GOODBYE_MS = 1_000;

export async function openDatabase(config: Config, log: Logger): Promise<Database> {
  if (config.DATABASE_URL) return createPostgresDatabase(config.DATABASE_URL, log);
  return createPgliteDatabase(join(config.DATA_DIR, 'pgdata'));
}

/** Runs `work` as the role that owns the tables: MIGRATION_DATABASE_URL's when one is configured, else `db`'s own. */
export async function asOwner<T>(config: Config, db: Database, log: Logger, work: (owner: Database) => Promise<T>): Promise<T> {
  if (!config.MIGRATION_DATABASE_URL) return work(db);
  const owner = createPostgresDatabase(config.MIGRATION_DATABASE_URL, log);
  try {
    return await work(owner);
  } finally {
    await owner.close();
  }
}

/** Applies pending migrations, as the migration role when one is configured. */
export function migrateSchema(config: Config, db: Database, log: Logger): Promise<string[]> {
  return asOwner(config, db, log, migrate);
}

/** What history retention needs: the runtime database, the owner's, and the checkpoint builder. */
export function pruneTarget(config: Config, db: Database, checkpointer: Checkpointer, log: Logger): PruneTarget {
  return { db, checkpointer, log, asOwner: (work) => asOwner(config, db, log, work) };
}

/** The composition root: every concern is built and registered here, once. */
export async function createConcord(config: Config, log: Logger) {
  const metrics = createMetrics();
  const db = await openDatabase(config, log);
  if (config.DATABASE_URL && config.NODE_ENV === 'production') await refuseRlsBypassingLogin(db);
  await migrateSchema(config, db, log);

  const checkpointer = new Checkpointer(db, config.CHECKPOINT_EVERY, log, metrics);
  const retention = config.HISTORY_RETENTION_DAYS ? new HistoryRetention(pruneTarget(config, db, checkpointer, log), config.HISTORY_RETENTION_DAYS) : null;
  const recorder = new Recorder(new AuditTrail(config.AUDIT_TEXT_BURST_MS), log, metrics);
  const clientOwners = new ClientOwners(db, log);
  const updateLog = new UpdateLog({
    db,
    log,
    metrics,
    batchMax: config.COMMIT_BATCH_MAX,
    batchMaxBytes: config.COMMIT_BATCH_MAX_BYTES,
    record: (sql, updates) => recorder.record(sql, updates),
    landedUnseen: (names) => recorder.forget(names),
    onCommitted: (committed) => committed.forEach(({ document, seq }) => checkpointer.advance(document, seq)),
    claims: clientOwners,
  });
  const store = new DocumentStore(db, updateLog, checkpointer, recorder, log);
  const verify = createTokenVerifier(resolveTokenKey(config), { issuer: config.AUTH_ISSUER, audience: config.AUTH_AUDIENCE });

  // Several instances share documents and presence through Redis; without it this is the only one.
  const instance = instanceIdentity(config.INSTANCE_ID);
  const redis = config.REDIS_URL ? connectRedis(config.REDIS_URL, log) : null;
  if (redis) await ensureUniqueIdentity(redis, instance, log);
  const relay = redis && new InstanceRelay(redis, instance, log);
  const stopWatching = redis && relay && watchResponsiveness([redis, ...relay.connections], log);
  const beacon = redis && new UnloggedBeacon(redis, instance, () => updateLog.pendingDocuments(), log);
  const relayed: RelayedContent | undefined = beacon
    ? { rows: new RelayedRows(db, updateLog, log, metrics), follower: new LogFollower(store, beacon, log, metrics) }
    : undefined;
  const presence = new Presence({
    instance,
    idleMs: config.PRESENCE_IDLE_MS,
    board: redis && new RedisPresenceBoard(redis, instance),
    documentOf: (name) => hocuspocus.documents.get(name),
    log,
  });

  const persistence = new Persistence(updateLog, store, recorder, log, metrics, config.MAX_BACKLOG_BYTES, relayed);
  const hocuspocus = new Hocuspocus({
    quiet: true,
    ...unauthenticatedQueue,
    extensions: [
      new Authorization(verify, clientOwners, log, metrics),
      persistence,
      presence.sessions,
      new DatabaseExtension({
        // The log's checkpoint and tail go straight into Hocuspocus's document: nothing is left to apply.
        fetch: async (payload) => {
          await persistence.load(payload);
          return null;
        },
        // A "store" only waits until every update of the document is committed: the log is the store.
        store: ({ documentName }) => store.allCommitted(parseDocumentName(documentName)),
      }),
      ...(relay ? [relay] : []),
    ],
  });

  const documents = new DocumentService(hocuspocus, store, clientOwners);
  const history = new HistoryService(db, new Versions(db, checkpointer, log, config.HISTORY_REPLICAS), documents, metrics);

  const app = createHttpApp({
    log,
    metrics,
    instance,
    readiness: {
      postgres: async () => {
        await db.ping();
        if (!updateLog.healthy) throw new Error('update log writes are failing');
      },
      ...(redis && {
        redis: async () => {
          if (redis.status !== 'ready' || !relay?.redisAnswers) throw new Error('Redis is not connected');
          await redis.ping();
        },
      }),
    },
    documents: documentsApi(verify, [documentRoutes(documents, presence, config.MAX_MESSAGE_BYTES), historyRoutes(history)]),
    admin: adminPage(),
    limits: requestLimits(config, verify, redis, metrics),
    refreshGauges() {
      metrics.openConnections.set(hocuspocus.getConnectionsCount());
      metrics.loadedDocuments.set(hocuspocus.getDocumentsCount());
      metrics.checkpointsUnderWay.set(checkpointer.writesUnderWay);
    },
  });
  const httpServer = createServer(getRequestListener(app.fetch));
  const sockets = new WebSocketServer({ noServer: true, maxPayload: config.MAX_MESSAGE_BYTES });

  const socketLimits = createSocketLimits(config);
  httpServer.on('upgrade', (request, socket, head) => {
    socket.on('error', () => socket.destroy());
    sockets.handleUpgrade(request, socket, head, (ws) => new SocketSession(ws, toFetchRequest(request), { hocuspocus, limits: socketLimits, metrics, log }));
  });

  return {
    db,
    hocuspocus,
    instance,

    listen(): Promise<AddressInfo> {
      return new Promise((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(config.PORT, config.HOST, () => {
          retention?.start();
          resolve(httpServer.address() as AddressInfo);
        });
      });
    },

    /** Stops taking work, gives queued updates a bounded time to commit, then closes. */
    async close(): Promise<void> {
      httpServer.close();
      for (const ws of sockets.clients) ws.close(1012, 'server restarting');
      hocuspocus.closeConnections();
      await within(updateLog.whenDrained(), SHUTDOWN_DRAIN_MS, () => undefined);
      updateLog.close();
      await retention?.stop();
      relayed?.rows.close();
      relayed?.follower.close();
      beacon?.close();
      stopWatching?.();
      // Taking this instance's users off the board is a courtesy (they expire anyway): Redis may not answer.
      await within(presence.close(), REDIS_GOODBYE_MS, () => undefined);
      await relay?.onDestroy();
      redis?.disconnect();
      await checkpointer.close();
      await db.close();
    },
  };
}


function toFetchRequest(request: IncomingMessage): Request {
  const headers = new Headers();
  for (const [key, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
  }
  return new Request(new URL(request.url ?? '/', `http://${request.headers.host ?? 'localhost'}`), { headers });
}
