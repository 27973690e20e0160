import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Hocuspocus } from '@hocuspocus/server';
import { getRequestListener } from '@hono/node-server';
import { WebSocketServer } from 'ws';
import { ClientOwners } from './auth/client-owners.ts';
import { Authorization } from './auth/extension.ts';
import { WriteRefusals } from './auth/write-refusals.ts';
import { resolveTokenKey } from './auth/keys.ts';
import { createTokenVerifier } from './auth/tokens.ts';
import type { Config } from './config.ts';
import { refuseRlsBypassingLogin } from './db/login-role.ts';
import { migrateSchema, openDatabase, ownerDatabase, pruneTarget } from './database.ts';
import { createHttpApp, createMetricsApp } from './http/app.ts';
import { listenOn, type Bind } from './http/bind.ts';
import { adminPage } from './http/admin-page.ts';
import { authenticatedApi } from './http/api.ts';
import { documentRoutes } from './http/documents.ts';
import { lockRoutes } from './http/locks.ts';
import { historyRoutes } from './http/history.ts';
import { webhookRoutes } from './http/webhooks.ts';
import { policyRoutes } from './http/policies.ts';
import { requestLimits } from './http/request-limits.ts';
import { DocumentService } from './documents/service.ts';
import type { Logger } from './log.ts';
import { Limits } from './limits/extension.ts';
import { createMetrics } from './metrics.ts';
import { Checkpointer } from './persistence/checkpoints.ts';
import { DocumentStore } from './persistence/document-store.ts';
import { AcknowledgementGate } from './persistence/acknowledgement-gate.ts';
import { Persistence } from './persistence/extension.ts';
import { UpdateLog } from './persistence/update-log.ts';
import { AuditTrail } from './audit/trail.ts';
import { CommitPipeline } from './commit/pipeline.ts';
import { TableWriter } from './projection/tables.ts';
import { EventWriter } from './events/writer.ts';
import { EventFeed } from './events/feed.ts';
import { eventRetention } from './events/retention.ts';
import { documentEventRoutes, eventRoutes } from './http/events.ts';
import { historyRetention } from './history/retention.ts';
import { WebhookDispatcher } from './webhooks/dispatcher.ts';
import { WebhookEndpoints } from './webhooks/endpoints.ts';
import { NatsPublisher } from './events/nats.ts';
import { tenantsBehind } from './db/subscriptions.ts';
import { HistoryService } from './history/service.ts';
import { Versions } from './history/versions.ts';
import { connectRedis, instanceIdentity, watchResponsiveness } from './cluster/redis.ts';
import { ClusterFollower, followingLoads } from './cluster/follower.ts';
import { ensureUniqueIdentity, InstanceRelay } from './cluster/relay.ts';
import { LogFollower } from './persistence/log-follower.ts';
import { UnloggedBeacon } from './cluster/unlogged-beacon.ts';
import { Presence } from './presence/presence.ts';
import { RedisPresenceBoard } from './presence/redis-board.ts';
import { Locks } from './rules/lock-extension.ts';
import { DocumentLocks } from './rules/locks.ts';
import { RelayedRows } from './projection/relayed-rows.ts';
import { createSocketLimits, SocketSession, unauthenticatedQueue, type UpgradeRequest } from './socket/session.ts';
import { Projection } from './projection/extension.ts';
import { RuleBook } from './rules/rulebook.ts';
import { Rules } from './rules/extension.ts';
import { within } from './timeouts.ts';
import { FieldPolicies } from './rules/field-policies.ts';
import { PostgresStorage } from './storage/postgres.ts';
import { PostgresDocuments } from './storage/postgres-documents.ts';
import { PostgresHistory } from './storage/postgres-history.ts';

const SHUTDOWN_DRAIN_MS = 10_000;
const REDIS_GOODBYE_MS = 1_000;

/** The composition root: every concern is built and registered here, once. */
export async function createConcord(config: Config, log: Logger) {
  const metrics = createMetrics();
  const db = await openDatabase(config, log);
  if (config.DATABASE_URL && config.NODE_ENV === 'production') await refuseRlsBypassingLogin(db);
  await migrateSchema(config, db, log);

  const storage = new PostgresStorage(db);
  const postgresDocuments = new PostgresDocuments(db);
  const checkpointer = new Checkpointer({ storage, every: config.CHECKPOINT_EVERY, keepBytes: config.CHECKPOINT_KEEP_BYTES, log, metrics });
  const retention = config.HISTORY_RETENTION_DAYS ? historyRetention(pruneTarget(config, db, checkpointer, log), config.HISTORY_RETENTION_DAYS) : null;
  // What a commit writes besides the log, in the same transaction (the acknowledgement waits for all of it).
  const events = new EventWriter();
  const pipeline = new CommitPipeline({ writers: [new AuditTrail({ burstMs: config.AUDIT_TEXT_BURST_MS, maxUpdates: config.AUDIT_TEXT_BURST_MAX_UPDATES }), new TableWriter(), events], log, metrics });
  const feed = new EventFeed({ db, writer: events, pollMs: config.EVENTS_POLL_MS, maxWaitingPerTenant: config.EVENTS_MAX_WAITING_PER_TENANT });
  // Work across tenants (pruning events, finding what waits to be pushed) runs as the owner role.
  const owner = ownerDatabase(config, db, log);
  const eventsPruning = eventRetention(owner, config.EVENTS_RETENTION_DAYS, log);
  const clientOwners = new ClientOwners(postgresDocuments, log);
  const updateLog = new UpdateLog({
    storage,
    log,
    metrics,
    batchMax: config.COMMIT_BATCH_MAX,
    batchMaxBytes: config.COMMIT_BATCH_MAX_BYTES,
    pipeline,
    claims: clientOwners,
  });
  updateLog.on('committed', (committed) => committed.forEach(({ document, seq }) => checkpointer.advance(document, seq)));
  const store = new DocumentStore(storage, postgresDocuments, updateLog, checkpointer, pipeline, log);
  // Each tenant's field permissions, read at most once a second (the rule check and /api/policies).
  const fieldPolicies = new FieldPolicies(db, log);
  const verify = createTokenVerifier(resolveTokenKey(config), { issuer: config.AUTH_ISSUER, audience: config.AUTH_AUDIENCE });

  // Several instances share documents and presence through Redis; without it this is the only one.
  const instance = instanceIdentity(config.INSTANCE_ID);
  const redis = config.REDIS_URL ? connectRedis(config.REDIS_URL, log) : null;
  if (redis) await ensureUniqueIdentity(redis, instance, log);
  const relay = redis && new InstanceRelay(redis, instance, log);
  const stopWatching = redis && relay && watchResponsiveness([redis, ...relay.connections], log);
  const beacon = redis && new UnloggedBeacon(redis, instance, () => updateLog.pendingDocuments(), log);
  // What is done here with content other instances relayed or logged (see ClusterFollower).
  const cluster = beacon && { follower: new LogFollower(store, beacon, log, metrics), rows: new RelayedRows(postgresDocuments, updateLog, log, metrics) };
  // Every change event also goes to JetStream when NATS_URL is set (one instance per tenant at a time).
  const nats = config.NATS_URL
    ? new NatsPublisher({
        servers: config.NATS_URL.split(',').map((server) => server.trim()),
        credentials: { user: config.NATS_USER, pass: config.NATS_PASSWORD, token: config.NATS_TOKEN },
        stream: config.NATS_STREAM,
        db,
        tenantsBehind: () => owner.transaction((sql) => tenantsBehind(sql, 'nats')),
        writer: events,
        instance,
        pollMs: config.EVENTS_POLL_MS,
        log,
        metrics,
      })
    : null;
  const presence = new Presence({
    instance,
    idleMs: config.PRESENCE_IDLE_MS,
    board: redis && new RedisPresenceBoard(redis, instance),
    documentOf: (name) => hocuspocus.documents.get(name),
    log,
  });

  // Locks on lines, sections and fields: held in Postgres, cached per loaded document for the rule check, told to clients live.
  const locks = new DocumentLocks({ db, redis, instance, settings: config, log });
  // Business rules (frozen statuses, valid values, field permissions, locks) hold for WebSocket and server-side writes alike.
  const rules = new RuleBook({ locks, policies: fieldPolicies });
  const refusals = new WriteRefusals(log, metrics);
  const limits = new Limits({ settings: config, verify, redis, instance, log, metrics });
  const hocuspocus = new Hocuspocus({
    quiet: true,
    ...unauthenticatedQueue,
    // Hooks run extension by extension in this order, and each document's Yjs
    // listeners are registered in it (afterLoadDocument): see the comments.
    extensions: [
      new Authorization(verify, clientOwners, refusals, metrics, config.MAX_NEW_CLIENTS_PER_UPDATE),
      // After Authorization (it judges only what the role may write), before the AcknowledgementGate (a refused write is not waited for).
      new Rules({ rules, refusals }),
      // After Authorization (a refused token takes no place), before presence (a dropped awareness update is no activity).
      limits,
      new Projection({ pipeline, log, metrics }),
      // After Projection: a load is timed until the tracker has read the document.
      new Persistence({ store, loader: cluster ? followingLoads(store, cluster.follower) : store, updateLog, log, metrics }),
      ...(cluster ? [new ClusterFollower({ ...cluster, updateLog, log })] : []),
      // After Authorization and Limits (a write they refuse is not waited for), after Persistence (its update listener
      // reads the commit Persistence's put on the transaction) and ClusterFollower (what a parked write's answer waits
      // for includes a relay of the same transaction).
      new AcknowledgementGate({
        updateLog,
        follower: cluster?.follower,
        maxBacklogBytes: config.MAX_BACKLOG_BYTES,
        parking: { maxBytes: config.MAX_PENDING_BYTES, maxWrites: config.MAX_PENDING_WRITES, maxAgeMs: config.MAX_PENDING_AGE_MS },
        rules,
        log,
        metrics,
      }),
      presence.sessions,
      new Locks(locks, log),
      // InstanceRelay's priority (50) puts it after all of the above.
      ...(relay ? [relay] : []),
    ],
  });

  const documents = new DocumentService(hocuspocus, store, clientOwners, rules);
  const postgresHistory = new PostgresHistory(db);
  const history = new HistoryService(postgresHistory, new Versions(storage, postgresHistory, checkpointer, log, config.HISTORY_REPLICAS), documents, metrics);
  // Pushes committed events to the tenants' webhook endpoints (the feed's commits wake it).
  const webhooks = new WebhookDispatcher({ db, owner, events, instance, settings: config, log, metrics });

  const refreshGauges = () => {
    metrics.openConnections.set(hocuspocus.getConnectionsCount());
    metrics.loadedDocuments.set(hocuspocus.getDocumentsCount());
    metrics.checkpointsUnderWay.set(checkpointer.writesUnderWay);
  };
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
      ...(nats && { nats: () => nats.check() }),
    },
    api: authenticatedApi(verify, [
      ['/documents', documentRoutes(documents, presence, locks, config.MAX_MESSAGE_BYTES)],
      ['/documents', lockRoutes(locks)],
      ['/documents', historyRoutes(history)],
      ['/documents', documentEventRoutes(feed)],
      ['/events', eventRoutes(feed)],
      ['/webhooks', webhookRoutes(new WebhookEndpoints(db, config.WEBHOOK_ALLOW_PRIVATE))],
      ['/policies', policyRoutes(fieldPolicies)],
    ]),
    admin: adminPage(),
    limits: requestLimits(config, verify, redis, metrics),
    refreshGauges,
    metricsOnOwnPort: config.METRICS_PORT !== undefined,
  });
  const httpServer = createServer(getRequestListener(app.fetch));
  // Scrapes stay off the public port when METRICS_PORT is set.
  const metricsServer = config.METRICS_PORT === undefined ? null : createServer(getRequestListener(createMetricsApp({ metrics, refreshGauges }).fetch));
  const sockets = new WebSocketServer({ noServer: true, maxPayload: config.MAX_MESSAGE_BYTES });

  const socketLimits = createSocketLimits(config, redis);
  httpServer.on('upgrade', (request, socket, head) => {
    socket.on('error', () => socket.destroy());
    sockets.handleUpgrade(request, socket, head, (ws) => new SocketSession(ws, socket, upgradeRequest(request), { hocuspocus, limits: socketLimits, verify, metrics, log }));
  });

  return {
    db,
    hocuspocus,
    instance,

    /** Where HTTP and WebSocket clients are served, and /metrics when METRICS_PORT gives it a port of its own. */
    async listen(): Promise<{ address: AddressInfo; metricsAddress: AddressInfo | null }> {
      const address = await listenOn(httpServer, publicBind(config));
      const metricsAddress = metricsServer && (await listenOn(metricsServer, metricsBind(config)!));
      retention?.start();
      eventsPruning.start();
      webhooks.start();
      nats?.start();
      return { address, metricsAddress };
    },

    /** Stops taking work, gives queued updates a bounded time to commit, then closes. */
    async close(): Promise<void> {
      httpServer.close();
      metricsServer?.close();
      for (const ws of sockets.clients) ws.close(1012, 'server restarting');
      hocuspocus.closeConnections();
      await within(updateLog.whenDrained(), SHUTDOWN_DRAIN_MS, () => undefined);
      updateLog.close();
      await retention?.stop();
      await eventsPruning.stop();
      cluster?.rows.close();
      cluster?.follower.close();
      beacon?.close();
      stopWatching?.();
      limits.close();
      await locks.close();
      // Taking this instance's users off the board is a courtesy (they expire anyway): Redis may not answer.
      await within(presence.close(), REDIS_GOODBYE_MS, () => undefined);
      await relay?.onDestroy();
      redis?.disconnect();
      await checkpointer.close();
      await webhooks.stop();
      await nats?.close();
      await owner.close();
      await db.close();
    },
  };
}

/** The public port: HTTP and WebSocket. */
export function publicBind(config: Config): Bind {
  return { port: config.PORT, host: config.HOST, settings: { port: 'PORT', host: 'HOST' } };
}

/** The private metrics port, when METRICS_PORT sets one. */
export function metricsBind(config: Config): Bind | null {
  if (config.METRICS_PORT === undefined) return null;
  return { port: config.METRICS_PORT, host: config.METRICS_HOST, settings: { port: 'METRICS_PORT', host: 'METRICS_HOST' } };
}

function upgradeRequest(request: IncomingMessage): UpgradeRequest {
  const headers = new Headers();
  for (const [key, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
  }
  return { url: request.url ?? '/', headers };
}
