import { DeliverPolicy, jetstream, type ConsumerMessages } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { ChangeEvent } from '../../src/events/event.ts';
import { waitFor } from '../../test/support/clients.ts';
import { openTestDatabase, rowsOf } from '../../test/support/inspect.ts';
import { NatsProcess } from '../../test/support/nats.ts';
import { now } from '../harness/clock.ts';
import { TENANT, type Deployment } from '../harness/deployment.ts';
import { ackLatencies, loadNote, runPhase, type Measured, type Row, type RunContext, type Scenario } from '../harness/scenario.ts';
import { fixed, spread } from '../harness/stats.ts';
import { editors } from './clients.ts';

const PACED_RATE = 500;
const WINDOW = 100;
const MANY_WRITERS = 10;
/** Longest wait for the consumer to receive the events of a phase after it ended. */
const CATCH_UP_MS = 60_000;

// S9 has two halves measured on their own deployments: events published to NATS (here) and
// delivered to a webhook receiver (to come: its rows and its measure beside these).
const natsRows: Row[] = [
  { key: 'natsLagP50', label: `NATS: event lag from acknowledgement to consumer, p50 at ${PACED_RATE} updates/s`, unit: 'ms', digits: 2, bareless: 'no events' },
  { key: 'natsLagP99', label: `NATS: event lag from acknowledgement to consumer, p99 at ${PACED_RATE} updates/s`, unit: 'ms', digits: 2, bareless: 'no events' },
  { key: 'natsRate', label: `NATS: events/s to the consumer, ${MANY_WRITERS} writers at full speed`, unit: 'events/s', digits: 0, bareless: 'no events' },
  { key: 'natsAckP50', label: `ack p50 at ${PACED_RATE} updates/s, events published to NATS`, unit: 'ms', digits: 2 },
  { key: 'natsAckP99', label: `ack p99 at ${PACED_RATE} updates/s, events published to NATS`, unit: 'ms', digits: 2, bar: { max: 25 } },
];

/** What change events cost and how soon they reach other systems. */
export const events: Scenario = {
  id: 'S9',
  title: 'change events',
  description:
    `Concord on PostgreSQL publishing every change event to a JetStream stream (a nats-server of the benchmark's own, NATS_URL); a JetStream consumer in the harness. ` +
    `One writer paced at ${PACED_RATE} updates/s (10 s, one event per update): event lag is from the update's acknowledgement reaching its writer to its event reaching the consumer, ` +
    `matched by the document's seq, on the machine's monotonic clock; the acknowledgements of the same phase, to read beside S2's paced ones (S2 writes the events but publishes none). ` +
    `Then ${MANY_WRITERS} writers at full speed (${WINDOW} edits in flight each, 10 s): events reaching the consumer per second. Bare Hocuspocus publishes nothing: only its acknowledgements are measured.`,
  rows: natsRows,
  async measure(run) {
    return measureNats(run);
  },
};

async function measureNats(run: RunContext): Promise<Measured> {
  const [seconds, warmUp] = run.smoke ? [1, 0.5] : [10, 2];
  const deployment = await run.deploy();
  const nats = run.kind === 'concord' ? await new NatsProcess().start() : null;
  try {
    if (nats) await deployment.restart('events published to NATS', { NATS_URL: nats.url, EVENTS_POLL_MS: '1000' });
    const pool = run.load(2);
    const many = Array.from({ length: MANY_WRITERS }, (_, i) => `s9-many-${i}`);
    await pool.open([
      ...editors(deployment, 's9-paced', 1, { prefix: 'paced', group: 'paced', record: false }),
      ...many.flatMap((document, i) => editors(deployment, document, 1, { prefix: `many-${i}`, group: 'many', record: false })),
    ]);
    const paced = { paced: { editsPerSecond: PACED_RATE, timeAcks: true } };
    await runPhase(deployment, pool, paced, warmUp);
    const consumer = nats && (await EventConsumer.start(nats.url));
    const firstSeq = nats ? (await documentVersion(deployment, 's9-paced')) + 1 : 0;
    const pacedOutcome = await runPhase(deployment, pool, paced, seconds);
    run.note(loadNote(`paced at ${PACED_RATE}/s`, pacedOutcome));
    const acks = spread(ackLatencies(pacedOutcome.reports));
    const figures: Measured = { natsLagP50: null, natsLagP99: null, natsRate: null, natsAckP50: acks.p50, natsAckP99: acks.p99 };
    if (!consumer) return figures;

    // The paced writer's n-th edit of the phase is the document's update firstSeq + n: its acknowledgement came at sentAt + latency.
    const pacedClient = pool.clientIds[0]!;
    const sent = pacedOutcome.reports.flatMap((report) => [...rowsOf3(report.sentUpdates)].filter(([client]) => client === pacedClient).map(([, , at]) => at));
    const latencies = pacedOutcome.reports.find((report) => report.ackLatencies.length > 0)?.ackLatencies ?? new Float64Array();
    const acknowledgedAt = sent.slice(0, latencies.length).map((at, n) => at + latencies[n]!);
    const pacedDocument = `${TENANT}/quote/s9-paced`;
    await consumer.caughtUp(await eventCount(deployment));
    const lags = acknowledgedAt.flatMap((at, n) => {
      const receivedAt = consumer.receivedAt.get(`${pacedDocument}#${firstSeq + n}`);
      return receivedAt === undefined ? [] : [receivedAt - at];
    });
    const lag = spread(lags);
    figures.natsLagP50 = lag.p50;
    figures.natsLagP99 = lag.p99;
    run.note(`NATS, paced: ${lags.length.toLocaleString('en')} events matched to ${acknowledgedAt.length.toLocaleString('en')} acknowledged edits, lag max ${fixed(lag.max, 1)} ms (negative: the event arrived before the acknowledgement)`);

    const before = consumer.received;
    const startedAt = now();
    const manyOutcome = await runPhase(deployment, pool, { many: { window: WINDOW } }, seconds);
    const endedAt = startedAt + manyOutcome.seconds * 1000;
    const inPhase = consumer.arrivals.filter((at) => at >= startedAt && at <= endedAt).length;
    figures.natsRate = inPhase / manyOutcome.seconds;
    await consumer.caughtUp(await eventCount(deployment));
    run.note(loadNote(`${MANY_WRITERS} writers, full speed`, manyOutcome));
    run.note(
      `NATS, ${MANY_WRITERS} writers: ${fixed(manyOutcome.reports.reduce((sum, r) => sum + r.acknowledged, 0) / manyOutcome.seconds, 0)} updates/s acknowledged; ` +
        `${(consumer.received - before).toLocaleString('en')} events published, the last ${fixed((consumer.arrivals.at(-1)! - endedAt) / 1000, 1)} s after the writers stopped`,
    );
    run.note(`NATS: the stream holds each event once (${consumer.duplicates} repeated event ids at the consumer); nats-server's CPU counts as other processes' in the noise figures`);
    await consumer.close();
    return figures;
  } finally {
    // Servers first: a NATS that goes away under a running server is a warning in its log.
    if (nats) {
      await Promise.all(deployment.servers.map((server) => server.stop()));
      await nats.drop();
    }
  }
}

/** [client, clock, sentAt] rows of a load report's typed array. */
function* rowsOf3(values: Float64Array): Generator<[number, number, number]> {
  for (let i = 0; i + 2 < values.length; i += 3) yield [values[i]!, values[i + 1]!, values[i + 2]!];
}

async function documentVersion(deployment: Deployment, id: string): Promise<number> {
  const db = await openTestDatabase(deployment.storage!);
  try {
    const [row] = await rowsOf<{ version: number }>(db, TENANT, 'SELECT version::int AS version FROM documents WHERE name = $1', [`${TENANT}/quote/${id}`]);
    return row?.version ?? 0;
  } finally {
    await db.close();
  }
}

async function eventCount(deployment: Deployment): Promise<number> {
  const db = await openTestDatabase(deployment.storage!);
  try {
    const [row] = await rowsOf<{ count: number }>(db, TENANT, 'SELECT count(*)::int AS count FROM change_events');
    return row!.count;
  } finally {
    await db.close();
  }
}

/**
 * A JetStream consumer of every event, as another system runs one: an ordered
 * consumer of the whole stream, recording when each event arrived (on the
 * monotonic clock the load processes share).
 */
class EventConsumer {
  /** `<document>#<seq>` of each document.changed/created event to its arrival. */
  readonly receivedAt = new Map<string, number>();
  readonly arrivals: number[] = [];
  received = 0;
  duplicates = 0;
  private readonly ids = new Set<string>();
  private readonly connection: NatsConnection;
  private readonly messages: ConsumerMessages;
  private readonly reading: Promise<void>;

  private constructor(connection: NatsConnection, messages: ConsumerMessages) {
    this.connection = connection;
    this.messages = messages;
    this.reading = this.read();
  }

  static async start(url: string): Promise<EventConsumer> {
    const connection = await connect({ servers: url });
    const consumer = await jetstream(connection).consumers.get('concord', { deliver_policy: DeliverPolicy.All });
    return new EventConsumer(connection, await consumer.consume({ max_messages: 2_000 }));
  }

  /** Resolves once `count` events arrived (every event of the benchmark's tenant so far). */
  caughtUp(count: number): Promise<unknown> {
    return waitFor(`${count} events at the consumer`, () => this.received >= count, CATCH_UP_MS);
  }

  async close(): Promise<void> {
    await this.messages.close();
    await this.reading;
    await this.connection.close();
  }

  private async read(): Promise<void> {
    for await (const message of this.messages) {
      const at = now();
      const event = message.json<ChangeEvent>();
      if (this.ids.has(event.id)) this.duplicates += 1;
      this.ids.add(event.id);
      this.received += 1;
      this.arrivals.push(at);
      const key = `${event.document.name}#${event.seq[0]}`;
      if (!this.receivedAt.has(key)) this.receivedAt.set(key, at);
    }
  }
}
