import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DocumentKindModule, DocumentView } from '../src/documents/kind.ts';
import { type DocumentKind, kindOf, kinds } from '../src/documents/kinds.ts';
import type { Fields, Member } from '../src/documents/layout.ts';
import type { Json } from '../src/json.ts';
import { applyPatch } from '../src/documents/patch.ts';
import { launchChromium, textOf, waitForText } from './support/browser.ts';
import { acknowledged } from './support/clients.ts';
import { api } from './support/documents.ts';
import { rowsOf } from './support/inspect.ts';
import { kindSamples } from './support/kind-samples.ts';
import { sharedServer } from './support/shared-server.ts';
import { token } from './support/tokens.ts';

/**
 * The contract every registered kind keeps (docs/adding-a-kind.md): its
 * tables are what its module says, its rows are what its module makes of the
 * document, a PATCH reaches the document and the tables, and the history page
 * draws it. Runs on PostgreSQL with TEST_DATABASE_URL, else on PGlite.
 */

const shared = sharedServer();
const tenant = 'acme';
// Columns every kind's tables have besides the module's own (written by the projection).
const headerBookkeeping = { tenant_id: 'text', version: 'bigint', updated_at: 'timestamp with time zone', updated_by: 'text' };
const memberBookkeeping = { tenant_id: 'text', updated_at: 'timestamp with time zone', updated_by: 'text' };

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

/** A client writes the kind's sample into a new document, as an editor does. */
async function writeSample(kind: DocumentKind, id: string): Promise<void> {
  const client = await shared.open(`${tenant}/${kind}/${id}`, 'sam');
  // One transaction, as an editor's page adds a member with its id (a member without one is refused).
  client.doc.transact(() => applyPatch(kindOf(kind).layout, client.doc, kindSamples[kind].content));
  await acknowledged(client);
  client.provider.destroy();
}

async function read(kind: DocumentKind, id: string): Promise<{ version: number; content: Record<string, any> }> {
  const answer = await api(shared.server.httpUrl, await token({ sub: 'vic', role: 'viewer' }), 'GET', `/api/documents/${kind}/${id}`);
  expect(answer.status).toBe(200);
  return answer.body;
}

/** The document as the module's row functions see it, built from its JSON form. */
function viewOf(module: DocumentKindModule<unknown>, id: string, content: Record<string, any>): DocumentView<unknown> {
  const members = (collection: string): Member[] => (content[collection] as Fields[]).map((fields) => ({ id: typeof fields.id === 'string' ? fields.id : null, fields }));
  const totals = members(module.tableCollection).reduce((sum, member) => module.totals.add(sum, member), module.totals.empty());
  return { id, header: content[module.layout.header.key], texts: Object.fromEntries(module.layout.texts.map((key) => [key, content[key]])), members, totals };
}

const without = (row: Record<string, unknown>, columns: string[]) => Object.fromEntries(Object.entries(row).filter(([column]) => !columns.includes(column)));

/**
 * The stored header and member rows equal the module's headerRow and memberRow
 * of the document as GET shows it, each value typed by Postgres (the expected
 * rows go through json_populate_record into the table's own row type).
 */
async function expectRowsOf(kind: DocumentKind, id: string): Promise<Record<string, unknown>> {
  const module = kindOf(kind);
  const { header, members } = module.tables;
  const { version, content } = await read(kind, id);
  const view = viewOf(module, id, content);
  const bookkeeping = ['tenant_id', 'updated_at', 'updated_by'];
  const expectedHeader: Record<string, Json> = { ...module.headerRow(view), version };
  const [wanted] = await rowsOf(shared.db, tenant, `SELECT (json_populate_record(NULL::${header.name}, $1::json)).*`, [JSON.stringify(expectedHeader)]);
  const [stored] = await rowsOf(shared.db, tenant, `SELECT * FROM ${header.name} WHERE id = $1`, [id]);
  expect(stored, `${header.name} row of ${id}`).toBeDefined();
  expect(without(stored!, bookkeeping)).toEqual(without(wanted!, bookkeeping));

  const expectedMembers = view
    .members(module.tableCollection)
    .map((member, position) => ({ ...module.memberRow(member as Member & { id: string }, position), [members.parentColumn]: id }));
  expect(expectedMembers.length).toBeGreaterThan(0);
  const wantedMembers = await rowsOf(shared.db, tenant, `SELECT * FROM json_populate_recordset(NULL::${members.name}, $1::json) ORDER BY position`, [JSON.stringify(expectedMembers)]);
  const storedMembers = await rowsOf(shared.db, tenant, `SELECT * FROM ${members.name} WHERE ${members.parentColumn} = $1 ORDER BY position`, [id]);
  expect(storedMembers.map((row) => without(row, bookkeeping))).toEqual(wantedMembers.map((row) => without(row, bookkeeping)));
  return content;
}

describe.each(Object.keys(kinds) as DocumentKind[])('kind contract: %s', (kind) => {
  const module = kindOf(kind);
  const sample = kindSamples[kind];
  const headerKey = module.layout.header.key;

  it('its tables have exactly the columns and types its module names, row-level security forced, and the runtime role may write them', async () => {
    const { header, members } = module.tables;
    for (const [table, columns, privileges] of [
      [header.name, { ...header.columns, ...headerBookkeeping }, ['SELECT', 'INSERT', 'UPDATE']],
      [members.name, { ...members.columns, ...memberBookkeeping }, ['SELECT', 'INSERT', 'UPDATE', 'DELETE']],
    ] as const) {
      const found = await rowsOf<{ column_name: string; data_type: string; numeric_precision: number | null; numeric_scale: number | null }>(
        shared.db,
        tenant,
        `SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`,
        [table],
      );
      // A numeric column with a precision is spelled as declared: numeric(14,2).
      const typeOf = (column: (typeof found)[number]) => (column.numeric_precision !== null && column.data_type === 'numeric' ? `numeric(${column.numeric_precision},${column.numeric_scale})` : column.data_type);
      expect(Object.fromEntries(found.map((column) => [column.column_name, typeOf(column)])), table).toEqual(columns);
      const [security] = await rowsOf<Record<string, boolean>>(
        shared.db,
        tenant,
        `SELECT relrowsecurity AS enabled, relforcerowsecurity AS forced,
                ${privileges.map((privilege) => `has_table_privilege(current_user, c.oid, '${privilege}') AS "${privilege}"`).join(', ')}
         FROM pg_class c WHERE c.oid = $1::regclass`,
        [table],
      );
      expect(security, table).toEqual({ enabled: true, forced: true, ...Object.fromEntries(privileges.map((privilege) => [privilege, true])) });
    }
  });

  it('a sample written by a client gives the header and member rows its module makes of the document', async () => {
    await writeSample(kind, 'sample');
    const content = await expectRowsOf(kind, 'sample');
    expect(content[headerKey]).toMatchObject(sample.content[headerKey] as object);
    if (sample.totals) expect(content.totals).toEqual(sample.totals);
  });

  it('a PATCH of a header field and a member shows in GET, in the tables and in the audit', async () => {
    await writeSample(kind, 'patched');
    const { header, member } = sample.patch;
    const patched = await api(shared.server.httpUrl, await token({ sub: 'pat', role: 'editor' }), 'PATCH', `/api/documents/${kind}/patched`, {
      [headerKey]: header,
      [member.collection]: { update: [{ id: member.id, ...member.fields }] },
    });
    expect(patched.status).toBe(200);
    const content = await expectRowsOf(kind, 'patched');
    expect(content[headerKey]).toMatchObject(header);
    expect((content[member.collection] as Fields[]).find((found) => found.id === member.id)).toMatchObject(member.fields);

    const audited = await rowsOf<{ entity: string; entity_id: string; field: string }>(
      shared.db,
      tenant,
      `SELECT entity, entity_id, field FROM field_changes WHERE name = $1 AND user_id = 'pat' AND action = 'update'`,
      [`${tenant}/${kind}/patched`],
    );
    expect(audited).toEqual(
      expect.arrayContaining([
        ...Object.keys(header).map((field) => ({ entity: module.layout.header.entity, entity_id: 'patched', field })),
        ...Object.keys(member.fields).map((field) => ({ entity: module.layout.collections[member.collection]!.entity, entity_id: member.id, field })),
      ]),
    );
  });

  it('the history page draws a version with its header fields and member ids', async () => {
    await writeSample(kind, 'drawn');
    const { content } = await read(kind, 'drawn');
    const page = await (await browser.newContext()).newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`);
    });
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    try {
      await page.goto(`${shared.server.httpUrl}/admin`);
      await page.fill('#token', await token({ sub: 'ada', role: 'admin' }));
      await page.click('#sign-in button[type=submit]');
      await waitForText(page, '#document', (text) => text.includes(`${kind}/drawn`));
      await page.selectOption('#document', `${tenant}/${kind}/drawn`);
      // What the version holds, each as the page shows a value: header fields set, texts, member ids, comments.
      const shown = (value: Json) => (typeof value === 'string' ? value : JSON.stringify(value));
      const memberCollections = Object.keys(module.layout.collections).filter((collection) => collection !== 'comments');
      const expected: Array<[what: string, text: string]> = [
        ...Object.entries(content[headerKey] as Fields).flatMap(([field, value]): Array<[string, string]> => (value === null ? [] : [[`header field ${field}`, shown(value)]])),
        ...module.layout.texts.map((key): [string, string] => [`text ${key}`, content[key]]),
        ...memberCollections.flatMap((collection) => (content[collection] as Fields[]).map((member): [string, string] => [`${collection} member`, member.id as string])),
        ...(content.comments as Fields[]).map((comment): [string, string] => ['comment', comment.body as string]),
      ];
      expect(expected.filter(([what]) => what.endsWith(' member')).length).toBeGreaterThan(0);
      // The page loads the first document, then the one picked: on a CI machine running both suites, that can take a while.
      const drawn = await waitForText(page, '#rendered', (text) => expected.every(([, value]) => text.includes(value)), textOf, 60_000).catch((error: Error) => {
        throw new Error(`${error.message}; the page reported: ${problems.join('; ') || 'nothing'}`);
      });
      for (const [what, value] of expected) expect(drawn, what).toContain(value);
      if (sample.totals) expect(await textOf(page, '[data-testid=totals]')).toContain(sample.totals.total.toFixed(2));
      expect(problems).toEqual([]);
    } finally {
      await page.context().close();
    }
  });
});
