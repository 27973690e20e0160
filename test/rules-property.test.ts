import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type * as Y from 'yjs';
import { kinds } from '../src/documents/kinds.ts';
import { addMember, adminToken, attempt, memberById, patch, patched, positionOf, type RulesTarget } from './support/rules.ts';
import { api } from './support/documents.ts';
import { sharedServer } from './support/shared-server.ts';

/**
 * Random sequences of writes by random roles (viewer, commenter, editor,
 * admin), over the WebSocket or by PATCH, some allowed and some forbidden by
 * the rules (roles, frozen statuses, transitions, valid values), against a
 * live server. A model predicts each write's fate from the quote's workflow
 * (src/documents/quote.ts) and the layout's values; every write must meet its
 * prediction, and afterwards the committed document holds every allowed write
 * and nothing of a forbidden one, and its history lists exactly the allowed
 * writes' authors.
 */
const shared = sharedServer();
const acme = (): RulesTarget => ({ httpUrl: shared.server.httpUrl, wsUrl: shared.server.wsUrl, db: shared.db, tenant: 'acme' });

const { workflow } = kinds.quote;
/** An admin's update that leaves a frozen status may change the content too (docs/rules.md). */
const REOPENING_MAY_EDIT = true;
const STATUSES = Object.keys(workflow.transitions);
const ROLES = ['viewer', 'commenter', 'editor', 'admin'] as const;
type Role = (typeof ROLES)[number];
const USER_OF: Record<Role, string> = { viewer: 'vera', commenter: 'cora', editor: 'eddie', admin: 'adam' };

type Op =
  | { op: 'title'; value: string }
  | { op: 'quantity'; pick: number; value: number | string }
  | { op: 'discount'; value: number }
  | { op: 'addLine'; duplicate: boolean }
  | { op: 'deleteLine'; pick: number }
  | { op: 'comment' }
  | { op: 'status'; pick: number; bogus: boolean }
  | { op: 'statusAndTitle'; pick: number; value: string };
interface Step {
  role: Role;
  via: 'socket' | 'patch';
  write: Op;
}

const title = fc.constantFrom('Pumps', 'Valves', 'Pumps and valves', '');
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant('title' as const), value: title }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('quantity' as const), pick: fc.nat(), value: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.constantFrom(2.5, -1, 'three')) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('discount' as const), value: fc.constantFrom(0, 10, 100, 101, -5) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('addLine' as const), duplicate: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteLine' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.constant({ op: 'comment' as const }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('status' as const), pick: fc.nat(), bogus: fc.nat({ max: 9 }).map((roll) => roll === 0) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('statusAndTitle' as const), pick: fc.nat(), value: title }) },
);
const step: fc.Arbitrary<Step> = fc.record({ role: fc.constantFrom(...ROLES), via: fc.constantFrom('socket' as const, 'patch' as const), write: op });

/** What the model holds of the quote. */
interface Model {
  status: string;
  title: string;
  discountPct: number;
  lines: Array<{ id: string; quantity: number }>;
  comments: string[];
}

/** One write made concrete against the model: what it sets, or null when it has nothing to act on. */
interface Concrete {
  status?: string;
  title?: string;
  discountPct?: number;
  quantity?: { id: string; value: number | string };
  addLine?: string;
  deleteLine?: string;
  comment?: string;
}

let lineIds = 0;
let commentIds = 0;

function concrete(model: Model, write: Op, author: string): Concrete | null {
  const line = (pick: number) => (model.lines.length > 0 ? model.lines[pick % model.lines.length]! : null);
  const otherStatus = (pick: number) => STATUSES.filter((status) => status !== model.status)[pick % (STATUSES.length - 1)]!;
  switch (write.op) {
    case 'title':
      return { title: write.value };
    case 'quantity': {
      const target = line(write.pick);
      return target && { quantity: { id: target.id, value: write.value } };
    }
    case 'discount':
      return { discountPct: write.value };
    case 'addLine':
      if (write.duplicate) return model.lines.length > 0 ? { addLine: model.lines[0]!.id } : null;
      return { addLine: `n${++lineIds}` };
    case 'deleteLine': {
      const target = line(write.pick);
      return target && { deleteLine: target.id };
    }
    case 'comment':
      return { comment: `k${++commentIds}-${author}` };
    case 'status':
      return { status: write.bogus ? 'won' : otherStatus(write.pick) };
    case 'statusAndTitle':
      return { status: otherStatus(write.pick), title: write.value };
  }
}

/** The codes that may refuse the write (several rules may apply at once); empty when it is allowed. */
function refusalCodes(model: Model, write: Concrete, role: Role, via: Step['via']): Set<string> {
  const contentWriter = role === 'editor' || role === 'admin';
  const onlyComment = write.comment !== undefined;
  if (via === 'patch' && !contentWriter) return new Set(['not-allowed']);
  if (role === 'viewer') return new Set(['read-only']);
  if (!contentWriter) return new Set(onlyComment ? [] : ['comments-only']);
  const codes = new Set<string>();
  const frozen = workflow.frozen.has(model.status);
  const content = write.title !== undefined || write.discountPct !== undefined || write.quantity || write.addLine || write.deleteLine;
  const reopens = role === 'admin' && frozen && write.status !== undefined && workflow.transitions[model.status]!.includes(write.status);
  if (frozen && content && !(REOPENING_MAY_EDIT && reopens)) codes.add('document-frozen');
  if (write.status !== undefined) {
    // An unknown status is no way out of a frozen one: it writes content.
    if (frozen && (role !== 'admin' || write.status === 'won')) codes.add('document-frozen');
    if (write.status === 'won') codes.add('invalid-value');
    else if (!workflow.transitions[model.status]!.includes(write.status)) codes.add('bad-transition');
  }
  const quantity = write.quantity?.value;
  if (quantity !== undefined && !(typeof quantity === 'number' && quantity >= 0)) codes.add('invalid-value');
  if (write.discountPct !== undefined && (write.discountPct < 0 || write.discountPct > 100)) codes.add('invalid-value');
  if (write.addLine !== undefined && model.lines.some((line) => line.id === write.addLine)) {
    codes.add('invalid-value');
    // A PATCH names the ids it adds: one that exists is a bad request before any rule looks at it.
    if (via === 'patch') codes.add('bad-request');
  }
  return codes;
}

function apply(model: Model, write: Concrete): void {
  if (write.status !== undefined) model.status = write.status;
  if (write.title !== undefined) model.title = write.title;
  if (write.discountPct !== undefined) model.discountPct = write.discountPct;
  if (write.quantity) model.lines.find((line) => line.id === write.quantity!.id)!.quantity = write.quantity.value as number;
  if (write.addLine !== undefined) model.lines.push({ id: write.addLine, quantity: 1 });
  if (write.deleteLine !== undefined) model.lines = model.lines.filter((line) => line.id !== write.deleteLine);
  if (write.comment !== undefined) model.comments.push(write.comment);
}

/** The write as a client makes it, in one transaction. */
function onReplica(write: Concrete, author: string): (doc: Y.Doc) => void {
  return (doc) => {
    const header = doc.getMap('quote');
    if (write.status !== undefined) header.set('status', write.status);
    if (write.title !== undefined) header.set('title', write.title);
    if (write.discountPct !== undefined) header.set('discountPct', write.discountPct);
    if (write.quantity) memberById(doc, 'lines', write.quantity.id).set('quantity', write.quantity.value);
    if (write.addLine !== undefined) addMember(doc, 'lines', { id: write.addLine, sku: 'S', quantity: 1, unitPrice: 1 });
    if (write.deleteLine !== undefined) doc.getArray('lines').delete(positionOf(doc, 'lines', write.deleteLine), 1);
    if (write.comment !== undefined) addMember(doc, 'comments', { id: write.comment, authorId: author, body: 'Looks good', parentId: null, anchor: null, resolved: false });
  };
}

/** The write as a PATCH body. */
function patchBody(write: Concrete, author: string): Record<string, unknown> {
  const header: Record<string, unknown> = {};
  if (write.status !== undefined) header.status = write.status;
  if (write.title !== undefined) header.title = write.title;
  if (write.discountPct !== undefined) header.discountPct = write.discountPct;
  const lines: Record<string, unknown[]> = {};
  if (write.quantity) lines.update = [{ id: write.quantity.id, quantity: write.quantity.value }];
  if (write.addLine !== undefined) lines.add = [{ id: write.addLine, sku: 'S', quantity: 1, unitPrice: 1 }];
  if (write.deleteLine !== undefined) lines.remove = [write.deleteLine];
  return {
    ...(Object.keys(header).length > 0 ? { quote: header } : {}),
    ...(Object.keys(lines).length > 0 ? { lines } : {}),
    ...(write.comment !== undefined ? { comments: { add: [{ id: write.comment, authorId: author, body: 'Looks good' }] } } : {}),
  };
}

let sessions = 0;

async function runSession(steps: Step[]): Promise<void> {
  const target = acme();
  const id = `prop-${++sessions}`;
  const name = `acme/quote/${id}`;
  await patched(target, name, { quote: { title: 'Pumps' }, lines: { add: [{ id: 'l1', sku: 'S', quantity: 1, unitPrice: 1 }] } });
  const model: Model = { status: 'draft', title: 'Pumps', discountPct: 0, lines: [{ id: 'l1', quantity: 1 }], comments: [] };
  const authors = ['seeder'];
  for (const [index, { role, via, write }] of steps.entries()) {
    const user = USER_OF[role];
    const made = concrete(model, write, user);
    if (!made) continue;
    const codes = refusalCodes(model, made, role, via);
    let code: string | null;
    if (via === 'socket') {
      code = (await attempt(target, name, user, role, onReplica(made, user))).refusal?.code ?? null;
    } else {
      const answer = await patch(target, name, user, role, patchBody(made, user));
      code = answer.status === 200 ? null : answer.body.error.code;
    }
    const what = `step ${index}: ${role} ${via} ${JSON.stringify(made)} on a ${model.status} quote`;
    if (codes.size === 0) expect(code, `${what} is allowed`).toBeNull();
    else expect([...codes], `${what} is refused`).toContain(code);
    if (code === null) {
      apply(model, made);
      authors.push(user);
    }
  }

  const admin = await adminToken(target);
  const { body } = await api(target.httpUrl, admin, 'GET', `/api/documents/quote/${id}`);
  expect(body.content.quote).toMatchObject({ status: model.status, title: model.title, discountPct: model.discountPct });
  expect(body.content.lines.map((line: any) => ({ id: line.id, quantity: line.quantity }))).toEqual(model.lines);
  expect(body.content.comments.map((comment: any) => comment.id)).toEqual(model.comments);
  const history = await api(target.httpUrl, admin, 'GET', `/api/documents/quote/${id}/history?limit=1000`);
  expect(history.body.updates.map((update: any) => update.userId)).toEqual(authors);
  expect(body.version).toBe(authors.length);
}

describe('rules hold for random sequences of writes', () => {
  it('every write meets its predicted fate; the committed quote holds every allowed write and nothing of a forbidden one', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 8, maxLength: 30 }), async (steps) => {
        await runSession(steps);
      }),
      { numRuns: 25, endOnFailure: true },
    );
  });
});
