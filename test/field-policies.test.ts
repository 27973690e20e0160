import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../src/db/database.ts';
import { ConcordError } from '../src/errors.ts';
import type { Logger } from '../src/log.ts';
import { FieldPolicies, knownFields, type FieldPolicy } from '../src/rules/field-policies.ts';
import { waitFor } from './support/clients.ts';
import { clusterFixture } from './support/cluster.ts';
import { createStorage, postgresTitle, postgresUrl, type TestStorage } from './support/database.ts';
import { api } from './support/documents.ts';
import { openMigratedDatabase, rowsOf } from './support/inspect.ts';
import type { ServerProcess } from './support/server.ts';
import { sharedServer } from './support/shared-server.ts';
import { token } from './support/tokens.ts';

const ROUTE = '/api/policies/fields';
/** How long after a change every instance enforces it, and what polling and HTTP add on a busy machine. */
const PROPAGATION_MS = 1_000;
const SLACK_MS = 300;

let tenants = 0;
/** A tenant of the test's own, so tests never see each other's policies. */
function freshTenant(): string {
  return `fields${process.pid}x${++tenants}`;
}

function tokenFor(tenant: string, role = 'admin', sub = 'root'): Promise<string> {
  return token({ tenant, sub, role });
}

async function getPolicy(server: ServerProcess, tenant: string): Promise<FieldPolicy> {
  const response = await api(server.httpUrl, await tokenFor(tenant), 'GET', ROUTE);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body;
}

async function putPolicy(server: ServerProcess, tenant: string, policy: unknown, sub = 'root') {
  return api(server.httpUrl, await tokenFor(tenant, 'admin', sub), 'PUT', ROUTE, policy);
}

interface PolicyRow {
  tenant_id: string;
  field: string;
  role: string;
  updated_by: string;
  updated_at: Date | string;
}

function storedRows(db: Database, tenant: string): Promise<PolicyRow[]> {
  return rowsOf<PolicyRow>(db, tenant, 'SELECT tenant_id, field, role, updated_by, updated_at FROM field_policies ORDER BY field');
}

describe('field permissions over HTTP', () => {
  const shared = sharedServer();

  it('an admin reads an empty policy, replaces it whole, and reads back what it set; the rows name who set each field', async () => {
    const tenant = freshTenant();
    expect(await getPolicy(shared.server, tenant)).toEqual({});

    const first = { 'quote_line.unitPrice': 'admin', 'quote.discountPct': 'admin', 'quote.title': 'editor' };
    const put = await putPolicy(shared.server, tenant, first, 'ada');
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body).toEqual(first);
    expect(await getPolicy(shared.server, tenant)).toEqual(first);
    const firstRows = await storedRows(shared.db, tenant);
    expect(firstRows.map(({ field, role, updated_by }) => ({ field, role, updated_by }))).toEqual([
      { field: 'quote.discountPct', role: 'admin', updated_by: 'ada' },
      { field: 'quote.title', role: 'editor', updated_by: 'ada' },
      { field: 'quote_line.unitPrice', role: 'admin', updated_by: 'ada' },
    ]);

    // The whole map is replaced: a field left out is open again, a changed one names its new author, an unchanged one keeps its own.
    const second = { 'quote_line.unitPrice': 'admin', 'quote.title': 'admin', 'report_section.body': 'admin' };
    expect((await putPolicy(shared.server, tenant, second, 'bob')).status).toBe(200);
    expect(await getPolicy(shared.server, tenant)).toEqual(second);
    const secondRows = await storedRows(shared.db, tenant);
    expect(secondRows.map(({ field, role, updated_by }) => ({ field, role, updated_by }))).toEqual([
      { field: 'quote.title', role: 'admin', updated_by: 'bob' },
      { field: 'quote_line.unitPrice', role: 'admin', updated_by: 'ada' },
      { field: 'report_section.body', role: 'admin', updated_by: 'bob' },
    ]);
    const unitPrice = (rows: PolicyRow[]) => new Date(rows.find((row) => row.field === 'quote_line.unitPrice')!.updated_at).getTime();
    expect(unitPrice(secondRows)).toBe(unitPrice(firstRows));

    expect((await putPolicy(shared.server, tenant, {})).status).toBe(200);
    expect(await getPolicy(shared.server, tenant)).toEqual({});
    expect(await storedRows(shared.db, tenant)).toEqual([]);
  });

  it('only admins read or set the policy: other roles get 403 not-allowed, no token 401, and nothing changes', async () => {
    const tenant = freshTenant();
    const policy = { 'quote.discountPct': 'admin' };
    expect((await putPolicy(shared.server, tenant, policy)).status).toBe(200);
    for (const role of ['viewer', 'commenter', 'editor']) {
      const userToken = await tokenFor(tenant, role, 'someone');
      const read = await api(shared.server.httpUrl, userToken, 'GET', ROUTE);
      expect(read.status, role).toBe(403);
      expect(read.body.error, role).toMatchObject({ code: 'not-allowed', message: expect.stringContaining('admin only') });
      const write = await api(shared.server.httpUrl, userToken, 'PUT', ROUTE, {});
      expect(write.status, role).toBe(403);
      expect(write.body.error.code, role).toBe('not-allowed');
    }
    const anonymous = await fetch(shared.server.httpUrl + ROUTE, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(anonymous.status).toBe(401);
    expect(await getPolicy(shared.server, tenant)).toEqual(policy);
  });

  it('a bad body is a 400 naming the offending key, and the stored policy stays as it was', async () => {
    const tenant = freshTenant();
    const policy = { 'quote_line.unitPrice': 'admin' };
    expect((await putPolicy(shared.server, tenant, policy)).status).toBe(200);

    for (const [body, named] of [
      [{ 'quote_line.unitPrice': 'admin', 'quote_line.price': 'admin' }, 'quote_line.price'],
      [{ 'quote.lines': 'admin' }, 'quote.lines'],
      [{ unitPrice: 'admin' }, 'unitPrice'],
      [{ 'report_section.text': 'admin' }, 'report_section.text'],
      [{ 'quote.discountPct': 'viewer' }, 'quote.discountPct'],
      [{ 'invoice.status': 'Admin' }, 'invoice.status'],
      [{ 'invoice.status': null }, 'invoice.status'],
    ] as const) {
      const response = await putPolicy(shared.server, tenant, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.code).toBe('bad-request');
      expect(response.body.error.message, JSON.stringify(body)).toContain(named);
    }
    const unknownKey = await putPolicy(shared.server, tenant, { 'quote_line.price': 'admin' });
    expect(unknownKey.body.error.message).toMatch(/quote_line\.price: no document kind has this field/);
    const badRole = await putPolicy(shared.server, tenant, { 'quote.discountPct': 'viewer' });
    expect(badRole.body.error.message).toMatch(/quote\.discountPct: expected "editor" or "admin"/);

    for (const body of [[], 'null', '"admin"', '{"quote.title":']) {
      const response = await putPolicy(shared.server, tenant, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.code).toBe('bad-request');
    }
    const notJson = await fetch(shared.server.httpUrl + ROUTE, {
      method: 'PUT',
      headers: { authorization: `Bearer ${await tokenFor(tenant)}`, 'content-type': 'text/plain' },
      body: JSON.stringify(policy),
    });
    expect(notJson.status).toBe(415);
    const tooLarge = await putPolicy(shared.server, tenant, { 'quote.title': 'admin', padding: 'x'.repeat(20_000) });
    expect(tooLarge.status).toBe(413);

    expect(await getPolicy(shared.server, tenant)).toEqual(policy);
  });

  it('every field of every kind may be named: header fields, text roots, collection fields, rich-text keys', async () => {
    const every = Object.fromEntries([...knownFields()].map((field) => [field, 'admin']));
    for (const field of ['quote.discountPct', 'quote.notes', 'quote_line.unitPrice', 'comment.body', 'report.title', 'report_section.body', 'invoice.notes', 'invoice_line.unitPrice']) {
      expect(every, field).toHaveProperty([field]);
    }
    const tenant = freshTenant();
    const response = await putPolicy(shared.server, tenant, every);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(await getPolicy(shared.server, tenant)).toEqual(every);
  });

  it('tenants are walled apart: over HTTP, and by row-level security in Postgres', async () => {
    const [a, b] = [freshTenant(), freshTenant()];
    expect((await putPolicy(shared.server, a, { 'quote.discountPct': 'admin' })).status).toBe(200);
    expect(await getPolicy(shared.server, b)).toEqual({});
    expect((await putPolicy(shared.server, b, { 'quote_line.unitPrice': 'admin' })).status).toBe(200);
    expect(await getPolicy(shared.server, a)).toEqual({ 'quote.discountPct': 'admin' });
    // B's replacement did not drop A's rows.
    expect((await storedRows(shared.db, a)).map((row) => [row.tenant_id, row.field])).toEqual([[a, 'quote.discountPct']]);

    // As the runtime role in B's transaction: no row of A to read, change or delete, and none to insert.
    const seenFromB = await shared.db.transaction(b, async (sql) => (await sql.query<{ tenant_id: string }>('SELECT tenant_id FROM field_policies')).rows);
    expect(seenFromB.map((row) => row.tenant_id)).toEqual([b]);
    await shared.db.transaction(b, (sql) => sql.query(`UPDATE field_policies SET role = 'editor' WHERE tenant_id = $1`, [a]));
    await shared.db.transaction(b, (sql) => sql.query('DELETE FROM field_policies WHERE tenant_id = $1', [a]));
    expect((await storedRows(shared.db, a)).map((row) => row.role)).toEqual(['admin']);
    await expect(
      shared.db.transaction(b, (sql) => sql.query(`INSERT INTO field_policies (tenant_id, field, role, updated_by) VALUES ($1, 'quote.title', 'admin', 'mallory')`, [a])),
    ).rejects.toThrow(/row-level security/);
    expect(await getPolicy(shared.server, a)).toEqual({ 'quote.discountPct': 'admin' });
  });

  it('the policy outlives a restart, also one that gives no warning', async () => {
    const tenant = freshTenant();
    const policy = { 'quote_line.unitPrice': 'admin', 'invoice.taxPct': 'admin' };
    expect((await putPolicy(shared.server, tenant, policy)).status).toBe(200);
    await shared.server.stop('SIGKILL');
    await shared.server.start();
    expect(await getPolicy(shared.server, tenant)).toEqual(policy);
  });
});

describe('the fields a policy may name', () => {
  it('docs/field-permissions.md lists every one, and nothing else', () => {
    const page = readFileSync(new URL('../docs/field-permissions.md', import.meta.url), 'utf8');
    const listed = page.slice(page.indexOf('the fields are:'), page.indexOf('- **Values**'));
    expect(new Set(listed.match(/`[a-z_]+\.[A-Za-z]+`/g)!.map((code) => code.slice(1, -1)))).toEqual(knownFields());
  });
});

/** A logger that keeps what was warned, for the cache's failure path. */
function warnings(): { log: Logger; warned: Array<Record<string, unknown>> } {
  const warned: Array<Record<string, unknown>> = [];
  const log = { warn: (fields: Record<string, unknown>) => void warned.push(fields) } as unknown as Logger;
  return { log, warned };
}

describe('FieldPolicies on one database shared by two instances', () => {
  let storage: TestStorage;
  let db: Database;
  let closed = false;
  let reads = 0;
  /** The database, counting the transactions run through it. */
  const counted: Database = {
    transaction: (tenant, work) => (reads++, db.transaction(tenant, work)),
    single: (tenant, work) => (reads++, db.single(tenant, work)),
    ownerTransaction: (work) => db.ownerTransaction(work),
    ping: () => db.ping(),
    close: () => db.close(),
  };

  beforeAll(async () => {
    storage = await createStorage();
    db = await openMigratedDatabase(storage);
  });
  afterAll(async () => {
    if (!closed) await db?.close();
    await storage?.drop();
  });

  it('concurrent callers share one read; the policy is read again (in the background) once it is half a second old, so a change made by another instance holds there within a second', async () => {
    const tenant = freshTenant();
    const here = new FieldPolicies(counted, warnings().log);
    const there = new FieldPolicies(db, warnings().log);
    reads = 0;
    const answers = await Promise.all(Array.from({ length: 50 }, () => here.of(tenant)));
    expect(reads).toBe(1);
    expect(new Set(answers).size).toBe(1);
    expect(answers[0]).toEqual({});

    const policy = { 'quote.discountPct': 'admin' } as const;
    expect(await there.replace(tenant, policy, 'ada')).toEqual(policy);
    // The other instance enforces it at once.
    expect(await there.of(tenant)).toEqual(policy);
    const changedAt = performance.now();
    // Here, the policy read under a second ago still holds, without another read...
    expect(await here.of(tenant)).toEqual({});
    expect(reads).toBe(1);
    // ...until it is half a second old.
    await waitFor('the change here', async () => Object.keys(await here.of(tenant)).length > 0, PROPAGATION_MS + SLACK_MS);
    expect(performance.now() - changedAt).toBeLessThan(PROPAGATION_MS + SLACK_MS);
    expect(await here.of(tenant)).toEqual(policy);
    expect(reads).toBe(2);
  });

  it('a replacement is in force here at once, even with an older read still under way', async () => {
    const tenant = freshTenant();
    const policies = new FieldPolicies(db, warnings().log);
    const reading = policies.of(tenant);
    const policy = { 'report_section.body': 'admin' } as const;
    await policies.replace(tenant, policy, 'ada');
    await reading;
    expect(await policies.of(tenant)).toEqual(policy);
  });

  it('when Postgres fails, the last policy read stays in force and the failure is logged; with none read, the caller is told storage-unavailable', async () => {
    const tenant = freshTenant();
    const { log, warned } = warnings();
    const policies = new FieldPolicies(db, log);
    const policy = { 'quote_line.unitPrice': 'admin' } as const;
    await policies.replace(tenant, policy, 'ada');
    expect(await policies.of(tenant)).toEqual(policy);

    await db.close();
    closed = true;
    await sleep(PROPAGATION_MS + 50);
    // The write in hand goes on with the last policy; the failed read is logged once it fails.
    expect(await policies.of(tenant)).toEqual(policy);
    await waitFor('the failed read', () => warned.length > 0);
    expect(warned).toEqual([expect.objectContaining({ code: 'field-policy-stale', tenant })]);
    // Tried again a second later, not on every call meanwhile.
    expect(await policies.of(tenant)).toEqual(policy);
    expect(warned).toHaveLength(1);

    const unread = new FieldPolicies(db, log);
    await expect(unread.of(tenant)).rejects.toSatisfy((error) => error instanceof ConcordError && error.code === 'storage-unavailable');
  });
});

describe.skipIf(!postgresUrl)(postgresTitle('field permissions across instances'), () => {
  const cluster = clusterFixture();

  it('a policy set on one instance answers on the other within a second, through the same cache its rule check reads', async () => {
    const { servers } = await cluster.start([{}, {}]);
    const [one, two] = servers as [ServerProcess, ServerProcess];
    const tenant = freshTenant();

    for (const policy of [{ 'quote_line.unitPrice': 'admin', 'quote.discountPct': 'admin' }, { 'quote.discountPct': 'admin' }]) {
      const before = await getPolicy(two, tenant);
      const primedAt = performance.now();
      expect((await putPolicy(one, tenant, policy)).status).toBe(200);
      const changedAt = performance.now();
      const answers: FieldPolicy[] = [];
      await waitFor(
        'the change on the other instance',
        async () => {
          answers.push(await getPolicy(two, tenant));
          return isDeepStrictEqual(answers.at(-1), policy);
        },
        PROPAGATION_MS + SLACK_MS,
      );
      expect(performance.now() - changedAt).toBeLessThan(PROPAGATION_MS + SLACK_MS);
      // The other instance answered from its cache, not a fresh read: its first answer after a quick PUT was the old policy.
      if (changedAt - primedAt < PROPAGATION_MS / 2) expect(answers[0]).toEqual(before);
      expect(await getPolicy(one, tenant)).toEqual(policy);
    }
  });
});
