import { afterAll, beforeAll, expect } from 'vitest';
import * as Y from 'yjs';
import type { Database } from '../../src/db/database.ts';
import { kindOf, parseDocumentName } from '../../src/documents/kinds.ts';
import { renderDocument } from '../../src/documents/service.ts';
import { acknowledged, connect, synced, waitFor, type Client } from './clients.ts';
import { api } from './documents.ts';
import { updateFrame } from './frames.ts';
import { createStorage, type TestStorage } from './database.ts';
import { openTestDatabase, rowsOf } from './inspect.ts';
import { RawSocket } from './raw-socket.ts';
import { RedisProcess } from './redis.ts';
import { ServerProcess } from './server.ts';
import { token } from './tokens.ts';

/**
 * Helpers for the tests of business rules (test/rules*.test.ts): writes that
 * end either acknowledged or refused, what the server holds of a document
 * read through every route that could show a refused write, and raw writers
 * that send hand-built Yjs updates.
 */

/** Where a rules test writes: one server (or instance), the database it writes, a tenant. */
export interface RulesTarget {
  httpUrl: string;
  wsUrl: string;
  db: Database;
  tenant: string;
}

/** The stateless message a refused write earns its author. */
export interface Refusal {
  type: 'concord:refused';
  code: string;
  message: string;
  fields?: string[];
  target?: string;
  holder?: { userId: string; name: string | null };
}

export function userToken(target: RulesTarget, sub: string, role: string): Promise<string> {
  return token({ tenant: target.tenant, sub, role, name: capitalised(sub) });
}

/** `lena` is named `Lena` in her tokens (a lock's holder is named by it). */
export function capitalised(sub: string): string {
  return sub.charAt(0).toUpperCase() + sub.slice(1);
}

export function refusals(stateless: Array<Record<string, unknown>>): Refusal[] {
  return stateless.filter((message): message is Record<string, unknown> & Refusal => message.type === 'concord:refused');
}

/** A synced provider of `sub` with `role` (the caller destroys it). */
export async function openAs(target: RulesTarget, name: string, sub: string, role: string, doc?: Y.Doc): Promise<Client> {
  const client = connect(target.wsUrl, name, await userToken(target, sub, role), doc);
  await synced(client);
  return client;
}

/**
 * Makes `change` on the client's replica in one transaction (one update) and
 * waits for the server's answer: null once acknowledged, the refusal when
 * refused. The server sends a refusal before its "not applied" answer.
 */
export async function write(client: Client, change: (doc: Y.Doc) => void): Promise<Refusal | null> {
  const known = refusals(client.stateless).length;
  client.doc.transact(() => change(client.doc));
  expect(client.provider.unsyncedChanges, 'the change made an update').toBeGreaterThan(0);
  await waitFor('the write acknowledged or refused', () => refusals(client.stateless).length > known || (client.provider.isSynced && client.provider.unsyncedChanges === 0));
  return refusals(client.stateless)[known] ?? null;
}

/** What one attempt from a provider of its own left: its refusal (null if it went in) and the Yjs clientID it wrote under. */
export interface Attempt {
  refusal: Refusal | null;
  clientID: number;
}

/**
 * A write from a new provider of `sub` with `role`, which is destroyed after
 * the answer: a refused replica holds what the server does not, so it is
 * never used again.
 */
export async function attempt(target: RulesTarget, name: string, sub: string, role: string, change: (doc: Y.Doc) => void): Promise<Attempt> {
  const client = await openAs(target, name, sub, role);
  try {
    return { refusal: await write(client, change), clientID: client.doc.clientID };
  } finally {
    client.provider.destroy();
  }
}

/** Expects the attempt refused with `code`, naming at least `fields`; returns its clientID (the refused content's). */
export function expectRefused(outcome: Attempt | Refusal | null, code: string, fields: string[] = []): number {
  const refusal = outcome && 'clientID' in outcome ? outcome.refusal : outcome;
  expect(refusal, `refused with ${code}`).not.toBeNull();
  expect(refusal).toMatchObject({ type: 'concord:refused', code });
  if (fields.length > 0) expect(refusal!.fields, `${code} names ${fields.join(', ')}`).toEqual(expect.arrayContaining(fields));
  return outcome && 'clientID' in outcome ? outcome.clientID : -1;
}

/** Expects the attempt acknowledged. */
export function expectAccepted(outcome: Attempt | Refusal | null): void {
  const refusal = outcome && 'clientID' in outcome ? outcome.refusal : outcome;
  expect(refusal, `accepted, not refused: ${JSON.stringify(refusal)}`).toBeNull();
}

/** An admin token of the target's tenant (the history, changes and events routes are admin-only). */
export function adminToken(target: RulesTarget): Promise<string> {
  return userToken(target, 'auditor', 'admin');
}

/** `PATCH /api/documents/:kind/:id` as `sub` with `role`. */
export async function patch(target: RulesTarget, name: string, sub: string, role: string, body: unknown): Promise<{ status: number; body: any }> {
  const { kind, id } = parseDocumentName(name);
  return api(target.httpUrl, await userToken(target, sub, role), 'PATCH', `/api/documents/${kind}/${id}`, body);
}

/** A PATCH that must go in (seeding a document, moving its status). */
export async function patched(target: RulesTarget, name: string, body: unknown, sub = 'seeder', role = 'editor'): Promise<number> {
  const answer = await patch(target, name, sub, role, body);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body.version;
}

/** Expects an HTTP refusal with `status` and `code`, naming at least `fields`. */
export function expectHttpRefusal(answer: { status: number; body: any }, status: number, code: string, fields: string[] = []): void {
  expect({ status: answer.status, code: answer.body?.error?.code }, JSON.stringify(answer.body)).toEqual({ status, code });
  if (fields.length > 0) expect(answer.body.error.fields).toEqual(expect.arrayContaining(fields));
}

/**
 * Everything a refused write could have touched, read through the routes
 * (the document, its history, its audit rows, the tenant's events about it)
 * and the tables it is projected to.
 */
export interface Footprint {
  version: number;
  content: any;
  updates: any[];
  changes: any[];
  events: any[];
  headerRows: Array<Record<string, unknown>>;
  memberRows: Array<Record<string, unknown>>;
}

export async function footprint(target: RulesTarget, name: string): Promise<Footprint> {
  const { kind, id } = parseDocumentName(name);
  const admin = await adminToken(target);
  const path = `/api/documents/${kind}/${id}`;
  const document = await api(target.httpUrl, admin, 'GET', path);
  expect(document.status, JSON.stringify(document.body)).toBe(200);
  const paged = async (route: (after: unknown) => string, key: string) => {
    const rows: any[] = [];
    for (let after: unknown = 0; ; ) {
      const answer = await api(target.httpUrl, admin, 'GET', route(after));
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      rows.push(...answer.body[key]);
      if (answer.body.next === null || answer.body[key].length === 0) return rows;
      after = answer.body.next;
    }
  };
  const { tables } = kindOf(kind);
  return {
    version: document.body.version,
    content: document.body.content,
    updates: await paged((after) => `${path}/history?limit=1000&after=${after}`, 'updates'),
    changes: await paged((after) => `${path}/changes?limit=1000&after=${after}`, 'changes'),
    events: await paged((after) => `/api/events?document=${kind}/${id}&limit=1000&after=${after}`, 'events'),
    headerRows: await rowsOf(target.db, target.tenant, `SELECT * FROM ${tables.header.name} WHERE id = $1`, [id]),
    memberRows: await rowsOf(target.db, target.tenant, `SELECT * FROM ${tables.members.name} WHERE ${tables.members.parentColumn} = $1 ORDER BY position`, [id]),
  };
}

/** What was added between two footprints: updates, audit rows and events. */
export function added(before: Footprint, after: Footprint) {
  return {
    updates: after.updates.slice(before.updates.length),
    changes: after.changes.slice(before.changes.length),
    events: after.events.slice(before.events.length),
  };
}

/** Expects exactly `count` updates since `before`, each by one of `users`, with their audit rows and events by them too. */
export function expectOnlyUpdatesBy(before: Footprint, after: Footprint, users: string[], count = users.length): ReturnType<typeof added> {
  const since = added(before, after);
  expect(after.version).toBe(before.version + count);
  expect(since.updates.map((update) => update.userId).sort()).toEqual(users.toSorted());
  expect(since.changes.filter((change) => !users.includes(change.userId))).toEqual([]);
  expect(since.events.filter((event) => !users.includes(event.actor))).toEqual([]);
  return since;
}

/** A document's JSON form as a replica holds it. */
export function rendered(client: Client | Y.Doc, name: string): any {
  return renderDocument(parseDocumentName(name), client instanceof Y.Doc ? client : client.doc);
}

/**
 * The observer's replica converges on what the server committed and holds
 * nothing written under the refused clientIDs: the refused writes never
 * reached it.
 */
export async function expectObserverHolds(observer: Client, name: string, content: unknown, refusedClients: number[]): Promise<void> {
  await acknowledged(observer);
  await waitFor('the observer holds what the server committed', () => JSON.stringify(rendered(observer, name)) === JSON.stringify(content));
  expect(refusedClients.filter((client) => observer.doc.store.clients.has(client))).toEqual([]);
}

/** Appends a new Y.Map member with `fields` to a root array (a line, a section, a comment). */
export function addMember(doc: Y.Doc, collection: string, fields: Record<string, unknown>, position?: number): Y.Map<unknown> {
  const member = new Y.Map<unknown>();
  const array = doc.getArray(collection);
  array.insert(position ?? array.length, [member]);
  for (const [key, value] of Object.entries(fields)) member.set(key, value);
  return member;
}

export function memberById(doc: Y.Doc, collection: string, id: string): Y.Map<unknown> {
  const member = doc
    .getArray(collection)
    .toArray()
    .find((item): item is Y.Map<unknown> => item instanceof Y.Map && item.get('id') === id);
  if (!member) throw new Error(`no ${collection} member "${id}"`);
  return member;
}

export function positionOf(doc: Y.Doc, collection: string, id: string): number {
  return doc
    .getArray(collection)
    .toArray()
    .findIndex((item) => item instanceof Y.Map && item.get('id') === id);
}

let comments = 0;

/** A comment as a commenter's client adds it. */
export function addComment(doc: Y.Doc, authorId: string, anchor: string | null = null): string {
  const id = `c${++comments}-${authorId}`;
  addMember(doc, 'comments', { id, authorId, body: `Comment by ${authorId}`, createdAt: new Date().toISOString(), parentId: null, anchor, resolved: false });
  return id;
}

/** Appends a paragraph to a report section's rich-text body. */
export function appendParagraph(doc: Y.Doc, sectionId: string, text: string): void {
  const body = memberById(doc, 'sections', sectionId).get('body') as Y.XmlFragment;
  const paragraph = new Y.XmlElement('paragraph');
  paragraph.insert(0, [new Y.XmlText(text)]);
  body.insert(body.length, [paragraph]);
}

/** The server's answer to one update sent on a raw socket. */
export interface RawAnswer {
  applied: boolean;
  refusal: Refusal | null;
}

/**
 * A client that speaks raw frames: its replica starts from the state it is
 * given (a synced provider's), and it sends whatever update a test builds,
 * not only what a provider would send.
 */
export class RawWriter {
  readonly doc = new Y.Doc();
  readonly socket: RawSocket;
  readonly name: string;

  private constructor(socket: RawSocket, name: string) {
    this.socket = socket;
    this.name = name;
  }

  static async open(target: RulesTarget, name: string, sub: string, role: string, from: Y.Doc): Promise<RawWriter> {
    const socket = await RawSocket.open(target.wsUrl);
    const writer = new RawWriter(socket, name);
    Y.applyUpdate(writer.doc, Y.encodeStateAsUpdate(from));
    await socket.authenticate(name, await userToken(target, sub, role));
    return writer;
  }

  /** The update `change` makes to the replica, in one transaction (applied to the replica, not sent). */
  prepare(change: (doc: Y.Doc) => void): Uint8Array {
    const before = Y.encodeStateVector(this.doc);
    this.doc.transact(() => change(this.doc));
    return Y.encodeStateAsUpdate(this.doc, before);
  }

  /**
   * Sends, under this writer's clientID, a run that waits for what `other`'s
   * replica holds and the server has not seen: a comment after `other`'s last,
   * then `change`. Yjs holds it pending until that arrives. Returns the run.
   */
  pushHeldBehind(other: RawWriter, sub: string, change: (doc: Y.Doc) => void): Uint8Array {
    const waiting = new Y.Doc();
    waiting.clientID = this.doc.clientID;
    Y.applyUpdate(waiting, Y.encodeStateAsUpdate(other.doc));
    waiting.transact(() => {
      addComment(waiting, sub);
      change(waiting);
    });
    const run = Y.encodeStateAsUpdate(waiting, Y.encodeStateVector(other.doc));
    this.push(run);
    return run;
  }

  /** Sends `update` without waiting for the answer. */
  push(update: Uint8Array): void {
    this.socket.send(updateFrame(this.name, update));
  }

  /** Answers so far, and the refusals among the stateless messages. */
  get traffic() {
    const traffic = this.socket.of(this.name);
    return { syncStatuses: traffic.syncStatuses, refusals: refusals(traffic.stateless) };
  }

  /** Sends `update` and waits for the server's answer to it. */
  async send(update: Uint8Array): Promise<RawAnswer> {
    const { syncStatuses, refusals: known } = this.traffic;
    const answered = syncStatuses.length;
    const refused = known.length;
    this.push(update);
    await waitFor('the raw write answered', () => this.traffic.syncStatuses.length > answered);
    return { applied: this.traffic.syncStatuses[answered]!, refusal: this.traffic.refusals[refused] ?? null };
  }

  /** Builds and sends `change`. */
  write(change: (doc: Y.Doc) => void): Promise<RawAnswer> {
    return this.send(this.prepare(change));
  }

  close(): void {
    this.socket.close();
  }
}

/** Expects a raw write refused ("not applied") with `code`, naming at least `fields`. */
export function expectRawRefused(answer: RawAnswer, code: string, fields: string[] = []): void {
  expect(answer.applied, 'answered "not applied"').toBe(false);
  expectRefused(answer.refusal, code, fields);
}

export function expectRawApplied(answer: RawAnswer): void {
  expect(answer, 'applied, not refused').toEqual({ applied: true, refusal: null });
}

/** `POST …/locks` as `sub` (an editor unless `role` says otherwise). */
export async function lock(target: RulesTarget, name: string, sub: string, lockTarget: string, ttlSeconds?: number, role = 'editor') {
  const { kind, id } = parseDocumentName(name);
  return api(target.httpUrl, await userToken(target, sub, role), 'POST', `/api/documents/${kind}/${id}/locks`, { target: lockTarget, ...(ttlSeconds ? { ttlSeconds } : {}) });
}

/** `DELETE …/locks/:target` as `sub`. */
export async function unlock(target: RulesTarget, name: string, sub: string, lockTarget: string, role = 'editor') {
  const { kind, id } = parseDocumentName(name);
  const response = await fetch(`${target.httpUrl}/api/documents/${kind}/${id}/locks/${encodeURIComponent(lockTarget)}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${await userToken(target, sub, role)}` },
  });
  return response.status;
}

/** The locks the server last told `client` about (`concord:locks`), or null before it told any. */
export function locksSeenBy(client: Client): Array<{ target: string; userId: string }> | null {
  const messages = client.stateless.filter((message) => message.type === 'concord:locks');
  return (messages.at(-1)?.locks as Array<{ target: string; userId: string }> | undefined) ?? null;
}

/** `PUT /api/policies/fields` as an admin of the target's tenant. */
export async function setFieldPolicy(target: RulesTarget, policy: Record<string, string>): Promise<void> {
  const answer = await api(target.httpUrl, await adminToken(target), 'PUT', '/api/policies/fields', policy);
  expect(answer.status, JSON.stringify(answer.body)).toBeLessThan(300);
}

/**
 * Two instances through Redis on one fresh PostgreSQL database for a whole
 * suite (call it inside the suite), with the database open here; `target(i)`
 * writes through instance i.
 */
export function rulesCluster(env: Record<string, string> = {}) {
  let storage: TestStorage | undefined;
  let redis: RedisProcess | undefined;
  const cluster = {
    servers: [] as ServerProcess[],
    db: undefined as unknown as Database,
    target(instance: number, tenant = 'acme'): RulesTarget {
      const server = cluster.servers[instance]!;
      return { httpUrl: server.httpUrl, wsUrl: server.wsUrl, db: cluster.db, tenant };
    },
  };
  beforeAll(async () => {
    storage = await createStorage('postgres');
    redis = await new RedisProcess().start();
    for (const instance of [1, 2]) {
      cluster.servers.push(await new ServerProcess({ ...storage.env, REDIS_URL: redis.url, INSTANCE_ID: `instance-${instance}`, ...env }).start());
    }
    cluster.db = await openTestDatabase(storage);
  });
  afterAll(async () => {
    await cluster.db?.close();
    for (const server of cluster.servers) await server.stop();
    await redis?.stop();
    await storage?.drop();
  });
  return cluster;
}
