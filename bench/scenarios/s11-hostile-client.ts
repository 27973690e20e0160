import { setTimeout as sleep } from 'node:timers/promises';
import * as Y from 'yjs';
import { loadConfig } from '../../src/config.ts';
import { waitFor } from '../../test/support/clients.ts';
import { authFrame, awarenessFrame, awarenessUpdate, syncFrame, updateFrame } from '../../test/support/frames.ts';
import { RawSocket } from '../../test/support/raw-socket.ts';
import { TENANT, type Deployment } from '../harness/deployment.ts';
import type { Row, Scenario } from '../harness/scenario.ts';
import { fixed, spread } from '../harness/stats.ts';

const defaults = loadConfig({});
// The test servers lift these (suites write at full speed): this scenario measures the defaults.
const DEFAULT_LIMITS = Object.fromEntries(
  (['SOCKET_MESSAGES_PER_SECOND', 'SOCKET_BYTES_PER_SECOND', 'HTTP_REQUESTS_PER_MINUTE', 'HTTP_ANONYMOUS_REQUESTS_PER_MINUTE'] as const).map((name) => [name, String(defaults[name])]),
);

/** A flood: what one user does at the edge of the limits, and a line on what it achieved. */
interface Flood {
  key: string;
  label: string;
  /** Runs before the measurement (documents it reads, say); not counted. */
  prepare?(context: FloodContext): Promise<void>;
  run(context: FloodContext): Promise<string>;
}

interface FloodContext {
  deployment: Deployment;
  seconds: number;
  smoke: boolean;
}

const name = (id: string) => `${TENANT}/quote/s11-${id}`;
const HONEST_PER_SECOND = 10;

/** What one hostile user can make the server spend under the default limits, one flood per limit. */
const floods: Flood[] = [
  {
    key: 'quiet',
    label: 'no flood (the honest editor alone)',
    async run({ seconds }) {
      await sleep(seconds * 1000);
      return 'nothing sent';
    },
  },
  {
    key: 'writes',
    label: `writes at the socket rate (${defaults.SOCKET_MESSAGES_PER_SECOND}/s of 5 KB: ${fixed(defaults.SOCKET_BYTES_PER_SECOND / 2 ** 20, 0)} MiB/s), each committed`,
    async run({ deployment, seconds }) {
      const socket = await openSocket(deployment, 'mallory', [name('writes')]);
      const doc = new Y.Doc();
      const notes = doc.getText('notes');
      doc.on('update', (update: Uint8Array) => socket.send(updateFrame(name('writes'), update)));
      const perTick = defaults.SOCKET_MESSAGES_PER_SECOND / 100;
      const bytes = Math.floor(defaults.SOCKET_BYTES_PER_SECOND / defaults.SOCKET_MESSAGES_PER_SECOND) - 120;
      let sent = 0;
      await paced(seconds, 10, () => {
        for (let i = 0; i < perTick; i++, sent++) {
          // Each write replaces the text: the document stays small, every write is logged, audited and evented.
          doc.transact(() => {
            notes.delete(0, notes.length);
            notes.insert(0, String(sent % 10).repeat(bytes));
          });
        }
      });
      return await answered(socket, name('writes'), sent);
    },
  },
  {
    key: 'largest',
    label: `writes of the largest message (${fixed(defaults.MAX_MESSAGE_BYTES / 2 ** 20, 0)} MiB), as many as the byte burst allows (${fixed(defaults.SOCKET_BYTE_BURST / 2 ** 20, 0)} MiB per 10 s)`,
    async run({ deployment, seconds }) {
      const socket = await openSocket(deployment, 'mallory', [name('largest')]);
      // A message over the per-second byte rate is paid from the burst alone: this many per 10 s, all at once.
      const sent = Math.floor(defaults.SOCKET_BYTE_BURST / defaults.MAX_MESSAGE_BYTES);
      for (let i = 0; i < sent; i++) {
        // A fresh replica each time: each write stands alone.
        const doc = new Y.Doc();
        doc.getText('notes').insert(0, 'x'.repeat(defaults.MAX_MESSAGE_BYTES - 200));
        socket.send(updateFrame(name('largest'), Y.encodeStateAsUpdate(doc)));
      }
      await sleep(seconds * 1000);
      return await answered(socket, name('largest'), sent);
    },
  },
  {
    key: 'awareness',
    label: `awareness at the rate and burst (${defaults.AWARENESS_UPDATES_PER_SECOND}/s + ${defaults.AWARENESS_UPDATES_BURST} per 10 s) with states of ${fixed(defaults.AWARENESS_STATE_MAX_BYTES / 1024, 0)} KiB, 50 watchers`,
    async run({ deployment, seconds, smoke }) {
      const watchers = await Promise.all(Array.from({ length: smoke ? 5 : 50 }, (_, i) => openSocket(deployment, `watcher-${i}`, [name('awareness')])));
      let received = 0;
      for (const watcher of watchers) watcher.ws.on('message', (data: Buffer) => (received += data.length));
      const socket = await openSocket(deployment, 'mallory', [name('awareness')]);
      const state = JSON.stringify({ user: { name: 'mallory' }, pad: 'x'.repeat(defaults.AWARENESS_STATE_MAX_BYTES - 64) });
      const perSecond = defaults.AWARENESS_UPDATES_PER_SECOND + defaults.AWARENESS_UPDATES_BURST / 10;
      let clock = 0;
      await paced(seconds, 1000 / perSecond, () => socket.send(awarenessFrame(name('awareness'), awarenessUpdate([{ client: 4242, clock: ++clock, state }]))));
      await sleep(1000);
      return `${clock} sent; the watchers received ${fixed(received / 2 ** 20, 0)} MiB (${fixed(received / 2 ** 20 / seconds, 1)} MiB/s)`;
    },
  },
  {
    key: 'sync',
    label: `sync requests (${defaults.SYNC_REQUESTS_PER_WINDOW} per connection, ${defaults.SYNC_REQUESTS_PER_USER_PER_WINDOW} per user per ${defaults.SYNC_WINDOW_SECONDS} s) on ${defaults.MAX_CONNECTIONS_PER_USER} connections to a 256 KiB quote, never read`,
    async prepare({ deployment }) {
      const socket = await openSocket(deployment, 'setup', [name('sync')]);
      const doc = new Y.Doc();
      doc.getText('notes').insert(0, 'y'.repeat(256 * 1024));
      socket.send(updateFrame(name('sync'), Y.encodeStateAsUpdate(doc)));
      await answered(socket, name('sync'), 1);
      socket.close();
    },
    async run({ deployment, seconds, smoke }) {
      const sockets = await Promise.all(Array.from({ length: smoke ? 10 : defaults.MAX_CONNECTIONS_PER_USER }, () => openSocket(deployment, 'mallory', [name('sync')])));
      // The client stops reading: what the server sends waits in its memory.
      for (const socket of sockets) (socket.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      for (const socket of sockets) for (let i = 1; i < defaults.SYNC_REQUESTS_PER_WINDOW; i++) socket.send(syncStep1(name('sync')));
      await sleep(seconds * 1000);
      // The client reads nothing, so it never sees its refusals: the server counts them.
      const refused = (await deployment.server.metrics()).get('concord_limits_reached_total{limit="SYNC_REQUESTS_PER_USER_PER_WINDOW"}') ?? 0;
      return `${sockets.length} connections × ${defaults.SYNC_REQUESTS_PER_WINDOW} requests (one each at connect); ${refused} documents closed past the user's budget; the rest wait unread`;
    },
  },
  {
    key: 'documents',
    label: `documents open: ${defaults.MAX_CONNECTIONS_PER_USER} per user, ${defaults.MAX_DOCUMENTS_PER_SOCKET} per socket`,
    async run({ deployment, smoke, seconds }) {
      const perSocket = defaults.MAX_DOCUMENTS_PER_SOCKET;
      const count = smoke ? perSocket : defaults.MAX_CONNECTIONS_PER_USER;
      const ids = Array.from({ length: count }, (_, i) => name(`documents-${i}`));
      await Promise.all(Array.from({ length: count / perSocket }, (_, s) => openSocket(deployment, 'mallory', ids.slice(s * perSocket, (s + 1) * perSocket))));
      await sleep(seconds * 1000);
      return `${count} documents opened`;
    },
  },
  {
    key: 'unauthenticated',
    label: `sockets that never authenticate (closed after ${defaults.UNAUTHENTICATED_TIMEOUT_MS / 1000} s), 200 opened a second`,
    async run({ deployment, seconds }) {
      const sockets: RawSocket[] = [];
      await paced(seconds, 50, async () => {
        for (let i = 0; i < 10; i++) sockets.push(await RawSocket.open(deployment.server.wsUrl));
      });
      const open = sockets.filter((socket) => socket.isOpen).length;
      return `${sockets.length} opened, ${open} still open at the end`;
    },
  },
  {
    key: 'pending',
    label: `writes that can never apply, at the byte rate and burst, into ${defaults.MAX_CONNECTIONS_PER_USER} documents (each may park ${fixed(defaults.MAX_PENDING_BYTES / 2 ** 20, 0)} MiB)`,
    async run({ deployment, seconds, smoke }) {
      const perSocket = defaults.MAX_DOCUMENTS_PER_SOCKET;
      const socketCount = (smoke ? perSocket : defaults.MAX_CONNECTIONS_PER_USER) / perSocket;
      const sockets = await Promise.all(
        Array.from({ length: socketCount }, (_, s) => openSocket(deployment, 'mallory', Array.from({ length: perSocket }, (_, d) => name(`pending-${s}-${d}`)))),
      );
      const chunk = 'z'.repeat(20 * 1024);
      // What a write costs the byte budget: the text and its frame.
      const frameBytes = updateFrame(name('pending-0-0'), missingDependency(chunk)).length;
      let sent = 0;
      // Each socket at its byte rate, round robin over its documents; its burst up front.
      const perTick = Math.floor(defaults.SOCKET_BYTES_PER_SECOND / frameBytes / 10);
      const send = (count: number) =>
        sockets.forEach((socket, s) => {
          for (let i = 0; i < count; i++, sent++) socket.send(updateFrame(name(`pending-${s}-${sent % perSocket}`), missingDependency(chunk)));
        });
      send(Math.floor(defaults.SOCKET_BYTE_BURST / frameBytes) - 1);
      await paced(seconds, 100, () => send(perTick));
      const closed = sockets.filter((socket) => !socket.isOpen).length;
      return `${sent} parked writes of 20 KiB sent over ${sockets.length} sockets${closed ? `; ${closed} socket(s) closed` : ''}`;
    },
  },
  {
    key: 'http',
    label: `HTTP at ${defaults.HTTP_REQUESTS_PER_MINUTE}/min of the costliest read: versions of the quote the write flood wrote`,
    async prepare(context) {
      await floods.find((flood) => flood.key === 'writes')!.run(context);
    },
    async run({ deployment, seconds }) {
      const admin = await deployment.token('mallory', 'admin');
      const written = seconds * defaults.SOCKET_MESSAGES_PER_SECOND;
      const statuses = new Map<number, number>();
      const perSecond = defaults.HTTP_REQUESTS_PER_MINUTE / 60;
      const reads: Promise<void>[] = [];
      await paced(seconds, 1000 / perSecond, () => {
        const seq = 1 + Math.floor(Math.random() * written);
        reads.push(
          fetch(`${deployment.server.httpUrl}/api/documents/quote/s11-writes/versions/${seq}`, { headers: { authorization: `Bearer ${admin}` } }).then(async (response) => {
            await response.arrayBuffer();
            statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
          }),
        );
      });
      await Promise.all(reads);
      return `answers by status: ${[...statuses].map(([status, count]) => `${status} × ${count}`).join(', ')}`;
    },
  },
];

const rows: Row[] = floods.flatMap(({ key, label }) => [
  { key: `${key}Cpu`, label: `${label}: server CPU`, unit: '% of a core', digits: 0, bareless: 'no limits' },
  { key: `${key}Memory`, label: `${label}: server memory growth, peak`, unit: 'MiB', digits: 0, bareless: 'no limits' },
  { key: `${key}Honest`, label: `${label}: an honest editor of another quote, acknowledgement p99`, unit: 'ms', digits: 1, bareless: 'no limits' },
]);

/** The strongest flood each default limit allows one user, and what it costs the server. */
export const hostileClient: Scenario = {
  id: 'S11',
  title: 'one hostile user at each limit',
  description:
    'One user (one token) floods a fresh server with the default limits, one flood at a time, each as hard as its limit allows for 10 s: ' +
    'server CPU over the flood (Postgres beside it in the notes) and the growth of its resident memory at its peak, sampled every 250 ms, over the memory before; ' +
    `meanwhile an honest editor of another quote (another user) types ${HONEST_PER_SECOND} characters a second, and the p99 of its acknowledgements is reported. ` +
    'What a limit still allows is what one user can cost; bare Hocuspocus has no limits to measure.',
  rows,
  async measure(run) {
    if (run.kind === 'bare') return Object.fromEntries(rows.map((row) => [row.key, null]));
    const seconds = run.smoke ? 2 : 10;
    const deployment = await run.deploy();
    const figures: Record<string, number> = {};
    for (const flood of floods) {
      await deployment.restart(`S11 ${flood.key}`, DEFAULT_LIMITS);
      const context = { deployment, seconds, smoke: run.smoke };
      await flood.prepare?.(context);
      run.progress(flood.key);
      const honest = await HonestEditor.open(deployment);
      const measured = await measureFlood(deployment, () => flood.run(context));
      figures[`${flood.key}Cpu`] = measured.cores * 100;
      figures[`${flood.key}Memory`] = measured.growthBytes / 2 ** 20;
      figures[`${flood.key}Honest`] = await honest.stop();
      run.note(`${flood.key}: ${measured.outcome}; Postgres ${fixed(measured.postgresCores * 100, 0)}% of a core; RSS before ${fixed(measured.beforeBytes / 2 ** 20, 0)} MiB`);
    }
    return figures;
  },
};

async function measureFlood(deployment: Deployment, flood: () => Promise<string>) {
  const before = deployment.usage();
  const postgresBefore = deployment.postgresCpuMs();
  let peak = before.rssBytes;
  const sampler = setInterval(() => (peak = Math.max(peak, deployment.usage().rssBytes)), 250);
  const startedAt = performance.now();
  let outcome: string;
  try {
    outcome = await flood();
  } finally {
    clearInterval(sampler);
  }
  const seconds = (performance.now() - startedAt) / 1000;
  const after = deployment.usage();
  return {
    outcome,
    cores: (after.cpuMs - before.cpuMs) / 1000 / seconds,
    postgresCores: (deployment.postgresCpuMs() - postgresBefore) / 1000 / seconds,
    beforeBytes: before.rssBytes,
    growthBytes: Math.max(peak, after.rssBytes) - before.rssBytes,
  };
}

/** A socket of `user` (an editor) with `documents` authenticated and synced. */
async function openSocket(deployment: Deployment, user: string, documents: string[]): Promise<RawSocket> {
  const socket = await RawSocket.open(deployment.server.wsUrl);
  const token = await deployment.token(user);
  for (const document of documents) {
    socket.send(authFrame(document, token));
    socket.send(syncStep1(document));
  }
  await waitFor(`${user}'s documents open`, () => documents.every((document) => socket.of(document).syncStep2s > 0), 60_000);
  return socket;
}

/** Another user typing into another quote during a flood, timing each acknowledgement. */
class HonestEditor {
  private readonly sentAt: number[] = [];
  private readonly latencies: number[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly socket: RawSocket;

  private constructor(socket: RawSocket) {
    this.socket = socket;
    const traffic = socket.of(name('honest'));
    // RawSocket's own listener, added first, has recorded the answer by now.
    socket.ws.on('message', () => {
      while (this.latencies.length < traffic.syncStatuses.length) this.latencies.push(performance.now() - this.sentAt[this.latencies.length]!);
    });
    const doc = new Y.Doc();
    const notes = doc.getText('notes');
    doc.on('update', (update: Uint8Array) => {
      this.sentAt.push(performance.now());
      socket.send(updateFrame(name('honest'), update));
    });
    this.timer = setInterval(() => notes.insert(notes.length, 'h'), 1000 / HONEST_PER_SECOND);
  }

  static async open(deployment: Deployment): Promise<HonestEditor> {
    const editor = new HonestEditor(await openSocket(deployment, 'honest', [name('honest')]));
    await waitFor('the honest editor\'s first write acknowledged', () => editor.latencies.length > 0, 60_000);
    return editor;
  }

  /** Stops typing, waits for the answers, and returns the acknowledgement p99 in ms. */
  async stop(): Promise<number> {
    clearInterval(this.timer);
    await waitFor('the honest editor acknowledged', () => this.latencies.length === this.sentAt.length, 60_000);
    this.socket.close();
    // The first write claims the editor's clientID in Postgres: not what a flood costs.
    return spread(this.latencies.slice(1)).p99;
  }
}

/** A sync step 1 with an empty state vector: answered with the whole document. */
const syncStep1 = (document: string) => syncFrame(document, 0, new Uint8Array([0]));

/** Waits for the answers to `sent` writes and says how many were applied. */
async function answered(socket: RawSocket, document: string, sent: number): Promise<string> {
  const traffic = socket.of(document);
  await waitFor('the answers', () => traffic.syncStatuses.length >= sent || !socket.isOpen, 60_000).catch(() => {});
  const applied = traffic.syncStatuses.filter(Boolean).length;
  const refusals = traffic.stateless.filter((message) => message.type === 'concord:refused').length;
  return `${sent} sent, ${applied} applied, ${refusals} refused${socket.isOpen ? '' : `; the socket was closed (${(await socket.closed).reason})`}`;
}

/** Calls `tick` every `everyMs` for `seconds` (waiting for an async tick before the next). */
async function paced(seconds: number, everyMs: number, tick: () => void | Promise<void>): Promise<void> {
  const startedAt = performance.now();
  for (let n = 0; performance.now() - startedAt < seconds * 1000; n++) {
    await tick();
    const wait = startedAt + (n + 1) * everyMs - performance.now();
    if (wait > 0) await sleep(wait);
  }
}

/** An update that waits for one its sender never sends: the server parks it. */
function missingDependency(text: string): Uint8Array {
  const doc = new Y.Doc();
  const notes = doc.getText('notes');
  notes.insert(0, 'a');
  const before = Y.encodeStateVector(doc);
  notes.insert(1, text);
  return Y.encodeStateAsUpdate(doc, before);
}
