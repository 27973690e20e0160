/**
 * A load process (forked by LoadPool): opens its share of light clients and
 * drives them phase by phase as the coordinator commands, recording what each
 * sends and receives on the machine-wide monotonic clock.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { token } from '../../test/support/tokens.ts';
import { now } from './clock.ts';
import { LightClient, type Receptions } from './light-client.ts';
import type { Activity, ClientSpec, Command, Phase, PhaseReport } from './load.ts';
import { QuoteEditor } from './quote-editor.ts';
import { Records } from './records.ts';

// Each client renews its awareness 15 s after its own last state, as a provider does; checking for due renewals
// only every 3 s would send a whole process's renewals in bursts the server then has to absorb at once.
const RENEW_CHECK_MS = 100;
// A paced sender this far behind its schedule starts again from now instead of sending a burst.
const MAX_CATCH_UP_MS = 1_000;
// Tokens outlive any run, so no connection is closed at expiry mid-measurement.
const TOKEN_LIFETIME_S = 6 * 3600;
// Longest wait at the end of a phase for the acknowledgements of timed writes.
const ACK_WAIT_MS = 30_000;

interface Driven {
  spec: ClientSpec;
  client: LightClient;
  editor: QuoteEditor;
  activity: Activity;
  edits: number;
  acknowledged: number;
  problemsSeen: number;
  stops: Array<() => void>;
}

const driven: Driven[] = [];
const sentUpdates = new Records(3);
const sentAwareness = new Records(3);
/** What each group of clients received. */
const received = new Map<string, { updates: Records; awareness: Records; receptions: Receptions }>();
const ackLatencies = new Records(1);
const problems: string[] = [];
let problemCount = 0;
let sending = false;
let recording = false;
// The histogram records whole sampling intervals: the delay is what exceeds the resolution.
const DELAY_RESOLUTION_MS = 5;
const eventLoopDelay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
let cpuAtStart = process.cpuUsage();

function receptionsOf(group: string): Receptions {
  let entry = received.get(group);
  if (!entry) {
    const [updates, awareness] = [new Records(4), new Records(4)];
    entry = {
      updates,
      awareness,
      receptions: {
        update: (client, clock, length, at) => recording && updates.push(client, clock, length, at),
        awareness: (client, clock, length, at) => recording && awareness.push(client, clock, length, at),
      },
    };
    received.set(group, entry);
  }
  return entry.receptions;
}

setInterval(() => {
  const at = now();
  for (const { client } of driven) client.renewAwarenessIfDue(at);
}, RENEW_CHECK_MS).unref();

process.on('message', async ({ id, command }: { id: number; command: Command }) => {
  try {
    process.send!({ id, result: await handle(command) });
  } catch (error) {
    process.send!({ id, error: (error as Error).stack ?? String(error) });
  }
});
process.on('disconnect', () => process.exit(0));

async function handle(command: Command): Promise<unknown> {
  switch (command.op) {
    case 'open':
      return open(command.clients, command.concurrency);
    case 'start':
      return start(command.phase);
    case 'finished':
      return finished(command.timeoutMs);
    case 'stop':
      return stop(command.settleMs);
    case 'close':
      await Promise.all(driven.map(({ client }) => client.close()));
      setImmediate(() => process.exit(0));
      return null;
  }
}

async function open(specs: ClientSpec[], concurrency: number): Promise<number[]> {
  const opened = new Array<Driven>(specs.length);
  let next = 0;
  const lane = async () => {
    for (let index = next++; index < specs.length; index = next++) opened[index] = await openOne(specs[index]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, specs.length) }, lane));
  driven.push(...opened);
  return opened.map(({ client }) => client.clientId);
}

async function openOne(spec: ClientSpec): Promise<Driven> {
  let entry: Driven | undefined;
  const client = await LightClient.connect({
    url: spec.url,
    document: spec.document,
    token: await token({ tenant: spec.tenant, sub: spec.user, role: spec.role, name: spec.user, expiresIn: TOKEN_LIFETIME_S }),
    awareness: { user: { id: spec.user, name: spec.user, color: '#3b82f6' }, status: 'viewing' },
    receptions: spec.record ? receptionsOf(spec.group) : undefined,
    onAcknowledged: (latencyMs) => entry && acknowledged(entry, latencyMs),
  });
  entry = { spec, client, editor: new QuoteEditor(client.doc, spec.user), activity: {}, edits: 0, acknowledged: 0, problemsSeen: 0, stops: [] };
  if (spec.lines > 0) {
    client.edit(() => entry!.editor.addLines(spec.lines));
    await client.acknowledged();
  }
  return entry;
}

function start(phase: Phase): void {
  sentUpdates.take();
  sentAwareness.take();
  for (const { updates, awareness } of received.values()) {
    updates.take();
    awareness.take();
  }
  ackLatencies.take();
  eventLoopDelay.reset();
  eventLoopDelay.enable();
  cpuAtStart = process.cpuUsage();
  sending = recording = true;
  for (const entry of driven) {
    const activity = phase[entry.spec.group] ?? {};
    Object.assign(entry, { activity, edits: 0, acknowledged: 0, stops: [] });
    if (activity.editsPerSecond) entry.stops.push(paced(activity.editsPerSecond, () => edit(entry)));
    if (activity.awarenessPerSecond) entry.stops.push(paced(activity.awarenessPerSecond, () => moveCursor(entry)));
    for (let i = 0; i < (activity.window ?? 0); i++) edit(entry);
  }
}

function edit(entry: Driven): void {
  const { activity } = entry;
  if (!sending || (activity.totalEdits !== undefined && entry.edits >= activity.totalEdits)) return;
  entry.edits++;
  const sent = entry.client.edit(() => entry.editor.next(), activity.timeAcks || activity.window !== undefined);
  sentUpdates.push(sent.client, sent.clock, sent.at);
}

function moveCursor(entry: Driven): void {
  const position = Math.floor(Math.random() * 1_000);
  const sent = entry.client.setAwareness({ cursor: { anchor: position, head: position }, status: 'editing' });
  sentAwareness.push(sent.client, sent.clock, sent.at);
}

function acknowledged(entry: Driven, latencyMs: number): void {
  entry.acknowledged++;
  ackLatencies.push(latencyMs);
  // Full speed: every acknowledgement lets the next edit go.
  if (entry.activity.window !== undefined) edit(entry);
}

/** Calls `action` `perSecond` times a second from a random offset, on a schedule that does not drift with timer lateness. */
function paced(perSecond: number, action: () => void): () => void {
  const interval = 1000 / perSecond;
  let due = now() + Math.random() * interval;
  let timer: NodeJS.Timeout;
  const tick = () => {
    const at = now();
    if (at - due > MAX_CATCH_UP_MS) due = at;
    for (; due <= at; due += interval) action();
    timer = setTimeout(tick, Math.max(0, due - now()));
  };
  timer = setTimeout(tick, Math.max(0, due - now()));
  return () => clearTimeout(timer);
}

async function finished(timeoutMs: number): Promise<void> {
  const bounded = driven.filter(({ activity }) => activity.totalEdits !== undefined);
  const deadline = now() + timeoutMs;
  while (bounded.some(({ activity, edits, client }) => edits < activity.totalEdits! || client.pending > 0)) {
    if (now() > deadline) throw new Error(`edits still unsent or unacknowledged after ${timeoutMs} ms`);
    await sleep(20);
  }
}

async function stop(settleMs: number): Promise<PhaseReport> {
  sending = false;
  for (const entry of driven) entry.stops.forEach((cancel) => cancel());
  // What is on its way still arrives and counts; timed writes are all waited for, so that the slowest acknowledgements are not left out.
  const timed = driven.filter(({ activity }) => activity.timeAcks || activity.window !== undefined);
  const acks = Promise.race([Promise.all(timed.map(({ client }) => client.acknowledged())), sleep(ACK_WAIT_MS)]);
  await Promise.all([acks, sleep(settleMs)]);
  recording = false;
  eventLoopDelay.disable();
  const cpu = process.cpuUsage(cpuAtStart);
  for (const entry of driven) collectProblems(entry);
  const report: PhaseReport = {
    sentUpdates: sentUpdates.take(),
    sentAwareness: sentAwareness.take(),
    receivedUpdates: Object.fromEntries([...received].map(([group, { updates }]) => [group, updates.take()])),
    receivedAwareness: Object.fromEntries([...received].map(([group, { awareness }]) => [group, awareness.take()])),
    ackLatencies: ackLatencies.take(),
    edits: driven.reduce((sum, { edits }) => sum + edits, 0),
    acknowledged: driven.reduce((sum, entry) => sum + entry.acknowledged, 0),
    problems: problems.splice(0),
    problemCount,
    cpuMs: (cpu.user + cpu.system) / 1000,
    eventLoopDelayP99Ms: Math.max(0, eventLoopDelay.percentile(99) / 1e6 - DELAY_RESOLUTION_MS),
    eventLoopDelayMaxMs: Math.max(0, eventLoopDelay.max / 1e6 - DELAY_RESOLUTION_MS),
  };
  problemCount = 0;
  return report;
}

function collectProblems(entry: Driven): void {
  const { refusals, document } = entry.client;
  for (const refusal of refusals.slice(entry.problemsSeen)) {
    problemCount++;
    if (problems.length < 5) problems.push(`${document}: ${refusal}`);
  }
  entry.problemsSeen = refusals.length;
}
