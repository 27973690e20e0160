import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Everything Concord measures, on one registry served at GET /metrics. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'concord_' });
  const registers = [registry];
  return {
    registry,
    openConnections: new Gauge({ name: 'concord_open_connections', help: 'Open WebSocket connections', registers }),
    loadedDocuments: new Gauge({ name: 'concord_loaded_documents', help: 'Documents loaded in memory', registers }),
    checkpointsUnderWay: new Gauge({ name: 'concord_checkpoints_under_way', help: 'Documents whose checkpoint is being written (or retried)', registers }),
    checkpointsWritten: new Counter({ name: 'concord_checkpoints_written_total', help: 'Checkpoints written to document_checkpoints', registers }),
    updatesReceived: new Counter({ name: 'concord_updates_received_total', help: 'Document updates received from clients and applied', registers }),
    updatesPersisted: new Counter({ name: 'concord_updates_persisted_total', help: 'Document updates committed to document_updates', registers }),
    ackLatency: new Histogram({
      name: 'concord_ack_latency_seconds',
      help: 'From an update message arriving to its acknowledgement being sent (after commit)',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    }),
    documentLoad: new Histogram({
      name: 'concord_document_load_seconds',
      help: 'Loading a document into memory: its latest checkpoint and the updates after it read, merged and applied, and read through its layout',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 10],
      registers,
    }),
    versionRead: new Histogram({
      name: 'concord_version_read_seconds',
      help: 'Reading one past version of a document for the history API, by where it was rebuilt from (replica in memory; a checkpoint\'s compact state and the tail; or its exact state and the tail)',
      labelNames: ['from'] as const,
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 10],
      registers,
    }),
    commitBatchSize: new Histogram({
      name: 'concord_commit_batch_updates',
      help: 'Updates written per group commit',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
      registers,
    }),
    seqPredictions: new Counter({
      name: 'concord_commit_seq_predictions_total',
      help: 'Group commits sent in one round trip on seqs predicted from the versions the instance knows: held, or missed (another writer logged a document first, so the commit went the longer way)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    persistenceErrors: new Counter({
      name: 'concord_persistence_errors_total',
      help: 'Failed writes to Postgres (retried), by operation',
      labelNames: ['operation'] as const,
      registers,
    }),
    layoutViolations: new Counter({
      name: 'concord_layout_violations_total',
      help: 'Stored values that break their kind\'s layout (read as null), by kind and field',
      labelNames: ['kind', 'field'] as const,
      registers,
    }),
    orphansRecovered: new Counter({
      name: 'concord_orphans_recovered_total',
      help: 'Relayed content logged by this instance because the instance that received it stopped before logging it',
      registers,
    }),
    limitsReached: new Counter({
      name: 'concord_limits_reached_total',
      help: 'Messages, connections and requests refused because a limit was reached, by limit (the setting\'s name)',
      labelNames: ['limit'] as const,
      registers,
    }),
    webhookDeliveries: new Counter({
      name: 'concord_webhook_deliveries_total',
      help: 'Webhook delivery attempts, by outcome: delivered, retried (to be tried again) or dead (dead-lettered)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    webhooksInFlight: new Gauge({ name: 'concord_webhook_requests_in_flight', help: 'Webhook requests sent and not yet answered', registers }),
    webhookLag: new Histogram({
      name: 'concord_webhook_lag_seconds',
      help: 'From an event occurring to the receiver taking the delivery that carries it (the first event of each delivery)',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400],
      registers,
    }),
    refusals: new Counter({ name: 'concord_refusals_total', help: 'Refused connections, messages and requests, by code', labelNames: ['code'] as const, registers }),
    natsPublished: new Counter({
      name: 'concord_nats_published_total',
      help: 'Change events JetStream acknowledged, by result (stored, or duplicate: dropped as a repeat of its Nats-Msg-Id)',
      labelNames: ['result'] as const,
      registers,
    }),
    natsLag: new Histogram({
      name: 'concord_nats_lag_seconds',
      help: 'From the update an event describes arriving to JetStream acknowledging the event',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
