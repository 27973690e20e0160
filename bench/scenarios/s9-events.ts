import { DeliverPolicy, jetstream, type ConsumerMessages } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { ChangeEvent } from '../../src/events/event.ts';
import { waitFor } from '../../test/support/clients.ts';
import { openTestDatabase, rowsOf } from '../../test/support/inspect.ts';
import { NatsProcess } from '../../test/support/nats.ts';
import { Receiver } from '../../test/support/receiver.ts';
import { api } from '../../test/support/documents.ts';
import { now } from '../harness/clock.ts';
import { TENANT, type Deployment } from '../harness/deployment.ts';
import { ackLatencies, loadNote, runPhase, type Measured, type Row, type RunContext, type Scenario } from '../harness/scenario.ts';
import { fixed, spread } from '../harness/stats.ts';
import { editors } from './clients.ts';

const PACED_RATE = 500;
const WINDOW = 100;
const MANY_WRITERS = 10;
/** Longest wait for the consumer to receive the events of a phase after it ended. */
const CATCH_UP_MS = 300_000;
/** How long the webhook receiver is down while the paced writer goes on. */
const DOWN_SECONDS = 60;

// S9 has two halves measured on deployments of their own: events published to NATS and
// delivered to a webhook receiver.
const natsRows: Row[] = [
  { key: 'natsLagP50', label: `NATS: event lag from acknowledgement to consumer, p50 at ${PACED_RATE} updates/s`, unit: 'ms', digits: 2, bareless: 'no events' },
  { key: 'natsLagP99', label: `NATS: event lag from acknowledgement to consumer, p99 at ${PACED_RATE} updates/s`, unit: 'ms', digits: 2, bareless: 'no events' },
  { key: 'natsRate', label: `NATS: updates/s covered by events at the consumer, ${MANY_WRITERS} writers at full speed`, unit: 'updates/s', digits: 0, bareless: 'no events' },
  { key: 'natsAckP50', label: `ack p50 at ${PACED_RATE} updates/s, events published to NATS`, unit: 'ms', digits: 2 },
  { key: 'natsAckP99', label: `ack p99 at ${PACED_RATE} updates/s, events published to NATS`, unit: 'ms', digits: 2, bar: { max: 25 } },
];
const webhookRows: Row[] = [
  { key: 'hookLagP50', label: `webhooks: event lag from acknowledgement to receiver, p50 at ${PACED_RATE} updates/s`, unit: 'ms', digits: 2, bareless: 'no events' },
  { key: 'hookLagP99', label: `webhooks: event lag from acknowledgement to receiver, p99 at ${PACED_RATE} updates/s`, unit: 'ms', digits: 2, bareless: 'no events' },
  { key: 'hookRate', label: `webhooks: updates/s covered by events at the receiver, ${MANY_WRITERS} writers at full speed`, unit: 'updates/s', digits: 0, bareless: 'no events' },
  { key: 'hookCatchUp', label: `webhooks: catch-up of a receiver down for ${DOWN_SECONDS} s (writer at ${PACED_RATE} updates/s)`, unit: 's', digits: 1, bareless: 'no events' },
  { key: 'hookAckP99', label: `ack p99 at ${PACED_RATE} updates/s, events sent to a webhook`, unit: 'ms', digits: 2, bar: { max: 25 } },
];

/** What change events cost and how soon they reach other systems. */
export const events: Scenario = {
  id: 'S9',
  title: 'change events',
  description:
    `Concord on PostgreSQL publishing every change event to a JetStream stream (a nats-server of the benchmark's own, NATS_URL); a JetStream consumer in the harness. ` +
    `One writer paced at ${PACED_RATE} updates/s (10 s, one event per update): event lag is from the update's acknowledgement reaching its writer to its event reaching the consumer, ` +
    `matched by the document's seq, on the machine's monotonic clock; the acknowledgements of the same phase, to read beside S2's paced ones (S2 writes the events but publishes none). ` +
    `Then ${MANY_WRITERS} writers at full speed (${WINDOW} edits in flight each, 10 s): updates whose events reached the consumer per second (a commit's consecutive updates of one author share an event). ` +
    `The same again with a webhook endpoint instead (a node:http receiver in the harness answering 200, WEBHOOK_ALLOW_PRIVATE=true, default retry schedule), ` +
    `and then the receiver's port closed for ${DOWN_SECONDS} s while the paced writer goes on: catch-up is from the receiver's return to its last event. ` +
    'Bare Hocuspocus publishes nothing: only its acknowledgements are measured.',
  rows: [...natsRows, ...webhookRows],
  async measure(run) {
    return { ...(await measureNats(run)), ...(await measureWebhooks(run)) };
  },
};

async function measureNats(run: RunContext): Promise<Measured> {
  const [seconds, warmUp] = run.smoke ? [1, 0.5] : [10, 2];
  const deployment = await run.deploy();
  const nats = run.kind === 'concord' ? await new NatsProcess().start() : null;
  try {
    if (nats) await deployment.restart('events published to NATS', { NATS_URL: nats.url, EVENTS_POLL_MS: '1000' });
    const pool = await writers(run, deployment);
    await runPhase(deployment, pool, paced, warmUp);
    const consumer = nats && (await EventConsumer.start(nats.url));
    const firstSeq = nats ? (await documentVersion(deployment, 's9-paced')) + 1 : 0;
    const pacedOutcome = await runPhase(deployment, pool, paced, seconds);
    run.note(loadNote(`paced at ${PACED_RATE}/s`, pacedOutcome));
    const acks = spread(ackLatencies(pacedOutcome.reports));
    const figures: Measured = { natsLagP50: null, natsLagP99: null, natsRate: null, natsAckP50: acks.p50, natsAckP99: acks.p99 };
    if (!consumer) return figures;

    const acknowledgedAt = acknowledgedTimes(pacedOutcome, pool.clientIds[0]!);
    await consumer.arrivals.caughtUp(await eventCount(deployment));
    const lags = lagsOf(acknowledgedAt, firstSeq, consumer.arrivals.receivedAt);
    const lag = spread(lags);
    figures.natsLagP50 = lag.p50;
    figures.natsLagP99 = lag.p99;
    run.note(`NATS, paced: ${lags.length.toLocaleString('en')} events matched to ${acknowledgedAt.length.toLocaleString('en')} acknowledged edits, lag max ${fixed(lag.max, 1)} ms (negative: the event arrived before the acknowledgement)`);

    const before = consumer.arrivals.received;
    const startedAt = now();
    const manyOutcome = await runPhase(deployment, pool, { many: { window: WINDOW } }, seconds);
    const endedAt = startedAt + manyOutcome.seconds * 1000;
    const inPhase = consumer.arrivals.coveredAt.filter((at) => at >= startedAt && at <= endedAt).length;
    figures.natsRate = inPhase / manyOutcome.seconds;
    await consumer.arrivals.caughtUp(await eventCount(deployment));
    run.note(loadNote(`${MANY_WRITERS} writers, full speed`, manyOutcome));
    run.note(
      `NATS, ${MANY_WRITERS} writers: ${fixed(manyOutcome.reports.reduce((sum, r) => sum + r.acknowledged, 0) / manyOutcome.seconds, 0)} updates/s acknowledged; ` +
        `${(consumer.arrivals.received - before).toLocaleString('en')} events published, the last ${fixed((consumer.arrivals.arrivals.at(-1)! - endedAt) / 1000, 1)} s after the writers stopped`,
    );
    run.note(`NATS: the stream holds each event once (${consumer.arrivals.duplicates} repeated event ids at the consumer); nats-server's CPU counts as other processes' in the noise figures`);
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

async function measureWebhooks(run: RunContext): Promise<Measured> {
  const [seconds, warmUp, down] = run.smoke ? [1, 0.5, 2] : [10, 2, DOWN_SECONDS];
  const deployment = await run.deploy();
  const receiver = run.kind === 'concord' ? await new Receiver().start() : null;
  const arrivals = new Arrivals();
  try {
    if (receiver) {
      await deployment.restart('events sent to a webhook', { WEBHOOK_ALLOW_PRIVATE: 'true', EVENTS_POLL_MS: '1000' });
      const admin = await deployment.token('bench-admin', 'admin');
      const registered = await api(deployment.server.httpUrl, admin, 'POST', '/api/webhooks', { url: receiver.url });
      if (registered.status !== 201) throw new Error(`registering the webhook failed: ${registered.status} ${JSON.stringify(registered.body)}`);
      receiver.onEvents = (events) => arrivals.record(events);
    }
    const pool = await writers(run, deployment);
    await runPhase(deployment, pool, paced, warmUp);
    const firstSeq = receiver ? (await documentVersion(deployment, 's9-paced')) + 1 : 0;
    const pacedOutcome = await runPhase(deployment, pool, paced, seconds);
    run.note(loadNote(`webhook, paced at ${PACED_RATE}/s`, pacedOutcome));
    const figures: Measured = { hookLagP50: null, hookLagP99: null, hookRate: null, hookCatchUp: null, hookAckP99: spread(ackLatencies(pacedOutcome.reports)).p99 };
    if (!receiver) return figures;

    await arrivals.caughtUp(await eventCount(deployment));
    const lag = spread(lagsOf(acknowledgedTimes(pacedOutcome, pool.clientIds[0]!), firstSeq, arrivals.receivedAt));
    figures.hookLagP50 = lag.p50;
    figures.hookLagP99 = lag.p99;
    run.note(`webhook, paced: ${arrivals.requests.toLocaleString('en')} requests so far for ${arrivals.received.toLocaleString('en')} events, lag max ${fixed(lag.max, 1)} ms`);

    const startedAt = now();
    const manyOutcome = await runPhase(deployment, pool, { many: { window: WINDOW } }, seconds);
    const endedAt = startedAt + manyOutcome.seconds * 1000;
    figures.hookRate = arrivals.coveredAt.filter((at) => at >= startedAt && at <= endedAt).length / manyOutcome.seconds;
    await arrivals.caughtUp(await eventCount(deployment));
    run.note(loadNote(`webhook, ${MANY_WRITERS} writers, full speed`, manyOutcome));
    run.note(`webhook, ${MANY_WRITERS} writers: the last event arrived ${fixed((arrivals.arrivals.at(-1)! - endedAt) / 1000, 1)} s after the writers stopped`);

    // The receiver goes away (its port closed) while the paced writer goes on, then comes back.
    await receiver.stop();
    const downOutcome = await runPhase(deployment, pool, paced, down);
    const back = now();
    await receiver.start();
    await arrivals.caughtUp(await eventCount(deployment));
    figures.hookCatchUp = (arrivals.arrivals.at(-1)! - back) / 1000;
    run.note(
      `webhook, receiver down ${down} s: ${downOutcome.reports.reduce((sum, r) => sum + r.acknowledged, 0).toLocaleString('en')} updates acknowledged meanwhile; ` +
        `every event arrived ${fixed(figures.hookCatchUp, 1)} s after it came back (${arrivals.duplicates} sent twice; the first retry of a delivery comes 4 – 5 s after a failure, the next 24 – 30 s, then 96 – 120 s)`,
    );
    return figures;
  } finally {
    await Promise.all(deployment.servers.map((server) => server.stop()));
    await receiver?.stop();
  }
}

/** What a consumer (a webhook receiver, a JetStream consumer) got: when each event first arrived, on the monotonic clock the load processes share. */
class Arrivals {
  /** `<document>#<seq>` of each update an event covers to that event's first arrival. */
  readonly receivedAt = new Map<string, number>();
  readonly arrivals: number[] = [];
  /** An arrival per document update a covering event covers (consecutive updates of a commit share one event). */
  readonly coveredAt: number[] = [];
  received = 0;
  duplicates = 0;
  requests = 0;
  private readonly ids = new Set<string>();

  record(events: ChangeEvent[]): void {
    const at = now();
    this.requests += 1;
    for (const event of events) {
      if (this.ids.has(event.id)) {
        this.duplicates += 1;
        continue;
      }
      this.ids.add(event.id);
      this.received += 1;
      this.arrivals.push(at);
      if (event.type.startsWith('document.')) for (let seq = event.seq[0]; seq <= event.seq[1]; seq += 1) this.coveredAt.push(at);
      for (let seq = event.seq[0]; seq <= event.seq[1]; seq += 1) {
        const key = `${event.document.name}#${seq}`;
        if (!this.receivedAt.has(key)) this.receivedAt.set(key, at);
      }
    }
  }

  /** Resolves once `count` distinct events arrived. */
  caughtUp(count: number): Promise<unknown> {
    return waitFor(`${count} events arrived`, () => this.received >= count, CATCH_UP_MS);
  }
}

const paced = { paced: { editsPerSecond: PACED_RATE, timeAcks: true } };

/** The load of both halves: the paced writer in `s9-paced`, and MANY_WRITERS in quotes of their own. */
async function writers(run: RunContext, deployment: Deployment) {
  const pool = run.load(2);
  const many = Array.from({ length: MANY_WRITERS }, (_, i) => `s9-many-${i}`);
  await pool.open([
    ...editors(deployment, 's9-paced', 1, { prefix: 'paced', group: 'paced', record: false }),
    ...many.flatMap((document, i) => editors(deployment, document, 1, { prefix: `many-${i}`, group: 'many', record: false })),
  ]);
  return pool;
}

/** When each of the paced writer's edits in a phase was acknowledged: its n-th edit came back at sentAt + latency. */
function acknowledgedTimes(outcome: Awaited<ReturnType<typeof runPhase>>, pacedClient: number): number[] {
  const sent = outcome.reports.flatMap((report) => [...rowsOf3(report.sentUpdates)].filter(([client]) => client === pacedClient).map(([, , at]) => at));
  const latencies = outcome.reports.find((report) => report.ackLatencies.length > 0)?.ackLatencies ?? new Float64Array();
  return sent.slice(0, latencies.length).map((at, n) => at + latencies[n]!);
}

/** From each acknowledgement to its event's arrival: the paced writer's n-th edit of the phase is its document's update firstSeq + n. */
function lagsOf(acknowledgedAt: number[], firstSeq: number, arrivals: Map<string, number>): number[] {
  return acknowledgedAt.flatMap((at, n) => {
    const receivedAt = arrivals.get(`${TENANT}/quote/s9-paced#${firstSeq + n}`);
    return receivedAt === undefined ? [] : [receivedAt - at];
  });
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
 * consumer of the whole stream, recording when each event arrived (Arrivals).
 */
class EventConsumer {
  readonly arrivals = new Arrivals();
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

  async close(): Promise<void> {
    await this.messages.close();
    await this.reading;
    await this.connection.close();
  }

  private async read(): Promise<void> {
    for await (const message of this.messages) this.arrivals.record([message.json<ChangeEvent>()]);
  }
}
