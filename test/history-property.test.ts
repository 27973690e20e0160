import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { renderDocument } from '../src/documents/service.ts';
import { applyTailToCompact } from '../src/persistence/compact.ts';
import { PostgresStorage } from '../src/storage/postgres.ts';
import { acknowledged, connect, waitFor, type Client } from './support/clients.ts';
import { addLine, api } from './support/documents.ts';
import { boundary } from './support/random-edits.ts';
import { sharedServer } from './support/shared-server.ts';
import { token } from './support/tokens.ts';

/**
 * Random edit sessions by three users (online, offline and merging back) and
 * API PATCHes. After every update the client-visible JSON is recorded; at the
 * end every version from the API must equal its recording, and replaying the
 * audit rows over version 1 must give the header and line fields of every
 * later version.
 *
 * How "right after update N" is known: steps run one at a time, and each step
 * makes at most one update. An online edit is one transaction; once the
 * server acknowledges it (committed, see docs/durability.md), its seq is the
 * previous one plus one, and the editor, which held every earlier update
 * (all online replicas converge before the next step), holds exactly what the
 * server held after it. An offline user keeps their replica and edits it with
 * no provider at all (as an offline-first client keeps its document in local
 * storage); coming back, a new provider syncs it, and the server logs
 * everything the replica has that it lacks as one update, the SyncStep2
 * reply, acknowledged like any write. After that the replica holds exactly the
 * merged state. A PATCH answers with its seq and the JSON it left. Each step
 * checks that the server's version moved by exactly the one update it
 * expects, so a recording can never be filed under the wrong seq.
 */

const CHECKPOINT_EVERY = 3;
const shared = sharedServer({ CHECKPOINT_EVERY: String(CHECKPOINT_EVERY) });
const USERS = ['alice', 'bob', 'carol'] as const;
const HEADER_FIELDS = ['number', 'title', 'customerId', 'customerName', 'status', 'currency', 'validUntil', 'discountPct', 'taxPct'];

type HeaderValue = { field: string; value: unknown };
type LineFields = Record<string, unknown>;
type Edit =
  | { op: 'header'; set: HeaderValue }
  | { op: 'addLine'; position: number; fields: LineFields }
  | { op: 'setLine'; pick: number; field: string; value: unknown }
  | { op: 'deleteLine'; pick: number }
  | { op: 'type'; at: number; text: string }
  | { op: 'erase'; at: number; length: number };
type Step =
  | { kind: 'edit'; user: number; edit: Edit }
  | { kind: 'offline'; user: number }
  | { kind: 'online'; user: number }
  | { kind: 'patch'; header: HeaderValue | null; addLine: LineFields | null; updateLine: { pick: number; field: string; value: unknown } | null; removeLine: number | null };

// Values the rules accept (a refused write never reaches the log; rules-property.test.ts covers refusals), and no freezing status.
const headerValue: fc.Arbitrary<HeaderValue> = fc.oneof(
  fc.record({ field: fc.constantFrom('title', 'customerName', 'number', 'customerId'), value: fc.constantFrom('Pumps', 'Valves', 'ACME GmbH', 'Q-7', '😀 emoji', '') }),
  fc.record({ field: fc.constant('status'), value: fc.constantFrom('draft', 'sent') }),
  fc.record({ field: fc.constant('currency'), value: fc.constantFrom('EUR', 'USD') }),
  fc.record({ field: fc.constant('validUntil'), value: fc.constantFrom('2026-12-31', '2027-01-15', null) }),
  fc.record({ field: fc.constantFrom('discountPct', 'taxPct'), value: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.constant(12.5)) }),
);
const lineField = fc.oneof(
  fc.record({ field: fc.constantFrom('quantity', 'unitPrice'), value: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.constantFrom(0.335, 1.005)) }),
  fc.record({ field: fc.constant('discountPct'), value: fc.integer({ min: 0, max: 100 }) }),
  fc.record({ field: fc.constantFrom('sku', 'description'), value: fc.constantFrom('P-1', 'Valve', 'Pump, large') }),
);
const lineFields = fc.record({ sku: fc.constantFrom('P-1', 'P-2', 'V-9'), quantity: fc.integer({ min: 0, max: 20 }), unitPrice: fc.constantFrom(10, 0.335, 2.5, 99.99) });
const user = fc.integer({ min: 0, max: USERS.length - 1 });
const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 3, arbitrary: headerValue.map((set) => ({ op: 'header' as const, set })) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('addLine' as const), position: fc.nat(), fields: lineFields }) },
  { weight: 4, arbitrary: fc.tuple(fc.nat(), lineField).map(([pick, { field, value }]) => ({ op: 'setLine' as const, pick, field, value })) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteLine' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('type' as const), at: fc.nat({ max: 30 }), text: fc.constantFrom('a', 'ok ', 'Lieferung', '😀') }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('erase' as const), at: fc.nat({ max: 30 }), length: fc.integer({ min: 1, max: 5 }) }) },
);
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('edit' as const), user, edit }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('offline' as const), user }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('online' as const), user }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('patch' as const),
      header: fc.option(headerValue),
      addLine: fc.option(lineFields),
      updateLine: fc.option(fc.tuple(fc.nat(), lineField).map(([pick, { field, value }]) => ({ pick, field, value }))),
      removeLine: fc.option(fc.nat()),
    }),
  },
);

interface Replica {
  user: string;
  doc: Y.Doc;
  client: Client | null;
}

let sessions = 0;

/** One session against the shared server; returns what it recorded, per seq. */
async function runSession(steps: Step[]) {
  const id = `prop-${++sessions}`;
  const name = `acme/quote/${id}`;
  const document = parseDocumentName(name);
  const jsonOf = (doc: Y.Doc) => renderDocument(document, doc);
  const recorded = new Map<number, { json: unknown; userId: string; origin: string }>();
  let lastSeq = 0;
  let nextLine = 0;
  const replicas: Replica[] = [];
  const version = async () => (await api(shared.server.httpUrl, await token({ sub: 'ada', role: 'admin' }), 'GET', `/api/documents/quote/${id}`)).body.version ?? 0;
  const goOnline = async (replica: Replica): Promise<void> => {
    const client = connect(shared.server.wsUrl, name, await token({ sub: replica.user }), replica.doc);
    replica.client = client;
    await acknowledged(client);
  };
  /** The step made one update (or, when `mayBeNone`, possibly none): file the JSON under its seq. */
  const record = async (json: unknown, userId: string, origin: string, mayBeNone = false) => {
    const now = await version();
    if (mayBeNone && now === lastSeq) return;
    expect(now, 'each step makes exactly one update').toBe(lastSeq + 1);
    lastSeq = now;
    recorded.set(now, { json, userId, origin });
    // Every online replica holds that state before the next step.
    for (const replica of replicas.filter((r) => r.client)) {
      await waitFor(`${replica.user} converges`, () => isDeepStrictEqual(jsonOf(replica.doc), json));
    }
  };

  try {
    for (const user of USERS) {
      const replica: Replica = { user, doc: new Y.Doc(), client: null };
      replicas.push(replica);
      await goOnline(replica);
    }
    for (const current of steps) {
      if (current.kind === 'patch') {
        const body = patchBody(current, recorded.get(lastSeq)?.json ?? jsonOf(new Y.Doc()), () => `api-${nextLine++}`);
        if (!body) continue;
        const answer = await api(shared.server.httpUrl, await token({ sub: 'dave', role: 'editor' }), 'PATCH', `/api/documents/quote/${id}`, body);
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        await record(answer.body.content, 'dave', 'api');
        expect(answer.body.version).toBe(lastSeq);
        continue;
      }
      const replica = replicas[current.user]!;
      if (current.kind === 'offline') {
        replica.client?.provider.destroy();
        replica.client = null;
      } else if (current.kind === 'online') {
        if (replica.client) continue;
        await goOnline(replica);
        await record(jsonOf(replica.doc), replica.user, 'client', true);
      } else if (applyEdit(replica.doc, current.edit, () => `${replica.user}-${nextLine++}`) && replica.client) {
        await acknowledged(replica.client);
        await record(jsonOf(replica.doc), replica.user, 'client');
      }
    }
    for (const replica of replicas.filter((r) => !r.client)) {
      await goOnline(replica);
      await record(jsonOf(replica.doc), replica.user, 'client', true);
    }
  } finally {
    for (const replica of replicas) replica.client?.provider.destroy();
  }
  return { id, recorded, lastSeq };
}

/** Applies an edit as a client would (one transaction); false when it changed nothing. */
function applyEdit(doc: Y.Doc, edit: Edit, newId: () => string): boolean {
  let changed = false;
  const listener = () => (changed = true);
  doc.on('update', listener);
  const lines = doc.getArray<unknown>('lines');
  const line = (pick: number) => (lines.length > 0 ? (lines.get(pick % lines.length) as Y.Map<unknown>) : null);
  const notes = doc.getText('notes');
  switch (edit.op) {
    case 'header':
      doc.getMap('quote').set(edit.set.field, edit.set.value);
      break;
    case 'addLine':
      addLine(doc, { id: newId(), ...edit.fields }, edit.position % (lines.length + 1));
      break;
    case 'setLine':
      line(edit.pick)?.set(edit.field, edit.value);
      break;
    case 'deleteLine':
      if (lines.length > 0) lines.delete(edit.pick % lines.length, 1);
      break;
    case 'type':
      notes.insert(boundary(notes.toString(), edit.at), edit.text);
      break;
    case 'erase': {
      const text = notes.toString();
      const from = boundary(text, edit.at);
      const to = boundary(text, from + edit.length);
      if (to > from) notes.delete(from, to - from);
      break;
    }
  }
  doc.off('update', listener);
  return changed;
}

/** A PATCH body against the document as it is now, or null when the step has nothing to send. */
function patchBody(step: Extract<Step, { kind: 'patch' }>, current: any, newId: () => string): Record<string, unknown> | null {
  const body: Record<string, any> = {};
  const ids: string[] = current.lines.map((line: any) => line.id);
  if (step.header && ['title', 'customerName', 'number', 'customerId'].includes(step.header.field)) body.quote = { [step.header.field]: step.header.value };
  const lines: Record<string, unknown[]> = {};
  const removed = step.removeLine !== null && ids.length > 0 ? ids[step.removeLine % ids.length]! : null;
  if (removed) lines.remove = [removed];
  const updated = step.updateLine && ids.length > 0 ? ids[step.updateLine.pick % ids.length]! : null;
  const settable = typeof step.updateLine?.value === 'number' || ['sku', 'description'].includes(step.updateLine?.field ?? '');
  if (updated && updated !== removed && settable) lines.update = [{ id: updated, [step.updateLine!.field]: step.updateLine!.value }];
  if (step.addLine) lines.add = [{ id: newId(), ...step.addLine }];
  if (Object.keys(lines).length > 0) body.lines = lines;
  return Object.keys(body).length > 0 ? body : null;
}

/** Every audit row of the document, through the API, page by page. */
async function allChanges(id: string): Promise<any[]> {
  const admin = await token({ sub: 'ada', role: 'admin' });
  const rows: any[] = [];
  for (let after = 0; ; ) {
    const { body } = await api(shared.server.httpUrl, admin, 'GET', `/api/documents/quote/${id}/changes?limit=50&after=${after}`);
    rows.push(...body.changes);
    if (body.next === null) return rows;
    after = body.next;
  }
}

/** Header fields and lines (by id) after applying the audit rows up to `seq` over `first`. */
function replayAudit(first: any, rows: any[], seq: number) {
  const header: Record<string, unknown> = Object.fromEntries(HEADER_FIELDS.map((field) => [field, first.quote[field]]));
  const lines = new Map<string, Record<string, unknown>>(first.lines.map((line: any) => [line.id, { ...line }]));
  // Text fields are coalesced per burst (their row holds the burst's end), so only the other fields are replayed.
  for (const row of rows.filter((row) => row.seq > 1 && row.seq <= seq && row.field !== 'notes')) {
    if (row.entity === 'quote') header[row.field] = row.newValue;
    if (row.entity !== 'quote_line') continue;
    if (row.action === 'create') lines.set(row.entityId, { ...row.newValue });
    else if (row.action === 'delete') lines.delete(row.entityId);
    else lines.get(row.entityId)![row.field] = row.newValue;
  }
  return { header, lines: Object.fromEntries(lines) };
}

function headerAndLines(json: any) {
  return { header: Object.fromEntries(HEADER_FIELDS.map((field) => [field, json.quote[field]])), lines: Object.fromEntries(json.lines.map((line: any) => [line.id, line])) };
}

describe('history is exact: random sessions', () => {
  it('every version from the API, and from the compact checkpoint where its tail allows, equals what a client held right after that update; the audit replays to every version', async () => {
    const admin = await token({ sub: 'ada', role: 'admin' });
    const storage = new PostgresStorage(shared.db);
    let fromCompact = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 40 }), async (steps) => {
        const { id, recorded, lastSeq } = await runSession(steps);
        const document = parseDocumentName(`acme/quote/${id}`);
        // Every update was recorded: the seqs are exactly 1..last.
        expect([...recorded.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: lastSeq }, (_, index) => index + 1));
        const history = (await api(shared.server.httpUrl, admin, 'GET', `/api/documents/quote/${id}/history?limit=1000`)).body;
        expect(history.updates.map((update: any) => [update.seq, update.userId, update.origin])).toEqual([...recorded].map(([seq, { userId, origin }]) => [seq, userId, origin]));
        for (const [seq, { json }] of recorded) {
          const { body } = await api(shared.server.httpUrl, admin, 'GET', `/api/documents/quote/${id}/versions/${seq}`);
          expect(body.content, `version ${seq}`).toEqual(json);
          // From the server's compact checkpoint, unless the tail refers to what it left out (offline edits merging back).
          const compact = (await storage.loadCompact(document, seq))!;
          const doc = new Y.Doc();
          if (compact.checkpoint) Y.applyUpdate(doc, compact.checkpoint.compact);
          if (!applyTailToCompact(doc, compact.tail.map(({ update }) => update))) continue;
          fromCompact += 1;
          expect(renderDocument(document, doc), `version ${seq} from the compact state`).toEqual(json);
        }
        // A session whose edits all found nothing to change logged nothing: nothing more to compare.
        if (lastSeq === 0) return;
        const rows = await allChanges(id);
        const first = recorded.get(1)!.json;
        for (const [seq, { json }] of recorded) {
          expect(replayAudit(first, rows, seq), `audit replayed to ${seq}`).toEqual(headerAndLines(json));
        }
      }),
      { numRuns: 15, endOnFailure: true },
    );
    // The compact path was taken, not refused every time.
    expect(fromCompact).toBeGreaterThan(0);
  });
});
