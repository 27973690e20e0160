import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { appendUpdates } from '../src/db/updates.ts';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { acknowledged, goOffline, waitFor } from './support/clients.ts';
import { addComment, addLine, api, lineById, typeInto } from './support/documents.ts';
import { fieldChanges, rowsOf } from './support/inspect.ts';
import { sharedServer } from './support/shared-server.ts';
import { token } from './support/tokens.ts';

// Long enough that a loaded CI machine never splits one burst; the test waits it out once.
const BURST_MS = 3_000;
const shared = sharedServer({ AUDIT_TEXT_BURST_MS: String(BURST_MS) });
const { open } = shared;

function quoteRow(id: string) {
  return rowsOf<Record<string, any>>(shared.db, 'acme', 'SELECT * FROM quotes WHERE id = $1', [id]).then((rows) => rows[0]);
}

function lineRows(quoteId: string) {
  return rowsOf<Record<string, any>>(shared.db, 'acme', 'SELECT * FROM quote_lines WHERE quote_id = $1 ORDER BY position', [quoteId]);
}

describe('quotes: audit rows and tables', () => {
  it('offline merge: both users edit offline, reconnect, converge; every audit row names its author; tables show the merge', async () => {
    const name = 'acme/quote/merge';
    const alice = await open(name, 'alice');
    alice.doc.transact(() => {
      alice.doc.getMap('quote').set('title', 'Seed');
      alice.doc.getMap('quote').set('taxPct', 20);
      addLine(alice.doc, { id: 'l1', sku: 'A', quantity: 1, unitPrice: 10 });
      addLine(alice.doc, { id: 'l2', sku: 'B', quantity: 2, unitPrice: 2.5 });
    });
    await acknowledged(alice);
    const bob = await open(name, 'bob');
    await waitFor('bob has the seed', () => lineById(bob.doc, 'l2'));

    await goOffline(alice);
    await goOffline(bob);
    alice.doc.getMap('quote').set('title', 'Alice title');
    alice.doc.getMap('quote').set('customerName', 'ACME GmbH');
    addLine(alice.doc, { id: 'la', sku: 'C', quantity: 3, unitPrice: 1.005 });
    lineById(alice.doc, 'l1')!.set('quantity', 4);
    bob.doc.getMap('quote').set('title', 'Bob title');
    bob.doc.getMap('quote').set('currency', 'EUR');
    addLine(bob.doc, { id: 'lb', sku: 'D', quantity: 1, unitPrice: 0.285 });
    bob.doc.getArray('lines').delete(0, 1); // l1, which alice edits offline

    // One after the other, so the audit order is known: alice's edit of l1 lands before bob deletes it.
    await alice.provider.connect();
    await acknowledged(alice);
    await bob.provider.connect();
    await acknowledged(bob);
    await waitFor('convergence', () => isDeepStrictEqual(alice.doc.toJSON(), bob.doc.toJSON()));

    const quote = alice.doc.getMap('quote');
    const finalTitle = quote.get('title');
    expect(['Alice title', 'Bob title']).toContain(finalTitle);
    // la and lb were appended concurrently: Yjs orders them, the same way everywhere.
    const order = alice.doc.getArray<Y.Map<unknown>>('lines').map((line) => line.get('id'));
    expect(order.slice().sort()).toEqual(['l2', 'la', 'lb']);

    const changes = await fieldChanges(shared.db, 'acme', name);
    const authorOf: Record<string, string> = { 'Alice title': 'alice', 'Bob title': 'bob', 'ACME GmbH': 'alice', EUR: 'bob' };
    const headerChanges = changes.filter((change) => change.entity === 'quote' && change.seq > 1);
    expect(headerChanges.length).toBeGreaterThanOrEqual(3);
    for (const change of headerChanges) expect(change.user_id).toBe(authorOf[change.new_value as string]);
    expect(headerChanges.filter((change) => change.field === 'title').at(-1)!.new_value).toBe(finalTitle);
    expect(headerChanges.find((change) => change.field === 'customerName')).toMatchObject({ user_id: 'alice', old_value: null });
    expect(headerChanges.find((change) => change.field === 'currency')).toMatchObject({ user_id: 'bob', old_value: null });

    const lineChanges = changes.filter((change) => change.entity === 'quote_line' && change.seq > 1);
    expect(lineChanges.find((change) => change.entity_id === 'la')).toMatchObject({ action: 'create', user_id: 'alice', new_value: { sku: 'C', quantity: 3 } });
    expect(lineChanges.find((change) => change.entity_id === 'lb')).toMatchObject({ action: 'create', user_id: 'bob', new_value: { sku: 'D' } });
    const l1 = lineChanges.filter((change) => change.entity_id === 'l1');
    expect(l1.map(({ action, field, user_id }) => ({ action, field, user_id }))).toEqual([
      { action: 'update', field: 'quantity', user_id: 'alice' },
      { action: 'delete', field: '*', user_id: 'bob' },
    ]);
    expect(l1[0]).toMatchObject({ old_value: 1, new_value: 4 });
    // The delete row holds the line as it was, with alice's merged quantity.
    expect(l1[1]!.old_value).toMatchObject({ id: 'l1', sku: 'A', quantity: 4, unitPrice: 10 });
    expect(changes.every((change) => change.entity_id !== null && !/^\d+$/.test(change.entity_id))).toBe(true);

    const [{ version }] = (await rowsOf<{ version: number }>(shared.db, 'acme', 'SELECT version FROM documents WHERE name = $1', [name])) as [{ version: number }];
    const row = await quoteRow('merge');
    // l2: 2 x 2.50 = 5.00; la: 3 x 1.005 = 3.015 -> 3.02 (half-up); lb: 1 x 0.285 -> 0.29. Subtotal 8.31; +20% tax = 9.972 -> 9.97.
    expect(row).toMatchObject({ title: finalTitle, customer_name: 'ACME GmbH', currency: 'EUR', line_count: 3, subtotal: '8.31', total: '9.97', version });
    const lines = await lineRows('merge');
    expect(lines.map(({ id, position }) => ({ id, position }))).toEqual(order.map((id, position) => ({ id, position })));
    const totals = Object.fromEntries(lines.map((line) => [line.id, line.line_total]));
    expect(totals).toEqual({ l2: '5.00', la: '3.02', lb: '0.29' });
    // Rows carry the author of the last update that changed them (bob's delete moved every position).
    expect(row!.updated_by).toBe('bob');
    expect(lines.find((line) => line.id === 'lb')).toMatchObject({ updated_by: 'bob' });
  });

  it('totals are decimal and half-up: 1.005 and 0.285 amounts, 100% discounts, a thousand lines', async () => {
    const name = 'acme/quote/totals';
    const editor = await open(name, 'tess');
    editor.doc.transact(() => {
      editor.doc.getMap('quote').set('discountPct', 12.5);
      editor.doc.getMap('quote').set('taxPct', 19);
      for (let index = 0; index < 1000; index++) addLine(editor.doc, { id: `n${index}`, quantity: 3, unitPrice: 0.335 });
      addLine(editor.doc, { id: 'free', quantity: 7, unitPrice: 99.99, discountPct: 100 });
      addLine(editor.doc, { id: 'tiny', quantity: 1, unitPrice: 0.005 });
    });
    await acknowledged(editor);
    // Each line: 3 x 0.335 = 1.005 -> 1.01 (binary floating point says 1.00). 1000 lines: 1010.00.
    // free: 0.00. tiny: 0.005 -> 0.01. Subtotal 1010.01.
    // Total: 1010.01 x 0.875 x 1.19 = 1051.6729125 -> 1051.67.
    expect(await quoteRow('totals')).toMatchObject({ line_count: 1002, subtotal: '1010.01', total: '1051.67' });
    const lines = await lineRows('totals');
    expect(lines).toHaveLength(1002);
    expect(new Set(lines.filter((line) => line.id.startsWith('n')).map((line) => line.line_total))).toEqual(new Set(['1.01']));
    expect(lines.find((line) => line.id === 'free')!.line_total).toBe('0.00');
    expect(lines.find((line) => line.id === 'tiny')!.line_total).toBe('0.01');

    // Changing one line moves the totals by exactly its difference: 1.01 -> 2 x 0.335 = 0.67.
    lineById(editor.doc, 'n500')!.set('quantity', 2);
    editor.doc.getMap('quote').set('discountPct', 100);
    await acknowledged(editor);
    expect(await quoteRow('totals')).toMatchObject({ subtotal: '1009.67', total: '0.00' });
  });

  it('text edits are coalesced per user and burst of typing; the log keeps every keystroke', async () => {
    const name = 'acme/quote/notes';
    const alice = await open(name, 'alice');
    const bob = await open(name, 'bob');
    const notes = alice.doc.getText('notes');
    typeInto(notes, 0, 'Delivery in May');
    await acknowledged(alice);
    await waitFor('bob sees the notes', () => bob.doc.getText('notes').toString() === 'Delivery in May');
    typeInto(bob.doc.getText('notes'), 15, ', on pallets');
    await acknowledged(bob);
    // Alice goes on typing within her burst: her row grows, bob's stays his.
    await waitFor('alice sees bob', () => notes.toString() === 'Delivery in May, on pallets');
    typeInto(notes, notes.length, '!');
    await acknowledged(alice);
    await new Promise((resolve) => setTimeout(resolve, BURST_MS + 500));
    typeInto(notes, 0, 'Note: ');
    await acknowledged(alice);

    const rows = (await fieldChanges(shared.db, 'acme', name)).filter((change) => change.field === 'notes').sort((a, b) => a.first_seq - b.first_seq);
    expect(rows.map(({ user_id, old_value, new_value }) => ({ user_id, old_value, new_value }))).toEqual([
      { user_id: 'alice', old_value: '', new_value: 'Delivery in May, on pallets!' },
      { user_id: 'bob', old_value: 'Delivery in May', new_value: 'Delivery in May, on pallets' },
      { user_id: 'alice', old_value: 'Delivery in May, on pallets!', new_value: 'Note: Delivery in May, on pallets!' },
    ]);
    const logged = await rowsOf<{ count: string }>(shared.db, 'acme', 'SELECT count(*) FROM document_updates WHERE name = $1', [name]);
    expect(Number(logged[0]!.count)).toBe('Delivery in May'.length + ', on pallets'.length + '!'.length + 'Note: '.length);
    // A burst's row spans the seqs of its keystrokes: alice's first from her first key to her '!'.
    expect({ first: rows[0]!.first_seq, last: rows[0]!.seq }).toEqual({ first: 1, last: 'Delivery in May, on pallets!'.length });
    expect((await quoteRow('notes'))!.notes).toBe('Note: Delivery in May, on pallets!');
  });

  it('commenters add, reply to and resolve comments; anything else they send is refused whole', async () => {
    const name = 'acme/quote/comments';
    const editor = await open(name, 'erin');
    editor.doc.getMap('quote').set('title', 'Original');
    await acknowledged(editor);
    const carl = await open(name, 'carl', 'commenter');
    addComment(carl.doc, { id: 'c1', authorId: 'carl', body: 'Is the price right?', createdAt: new Date().toISOString(), parentId: null, anchor: 'field:title', resolved: false });
    await acknowledged(carl);
    addComment(carl.doc, { id: 'c2', authorId: 'carl', body: 'Answering myself', createdAt: new Date().toISOString(), parentId: 'c1', anchor: null, resolved: false });
    (carl.doc.getArray('comments').get(0) as Y.Map<unknown>).set('resolved', true);
    await acknowledged(carl);
    await waitFor('the editor sees the thread', () => editor.doc.getArray('comments').length === 2);

    // A comment and a header change in one update: neither part goes anywhere.
    const dora = await open(name, 'dora', 'commenter');
    dora.doc.transact(() => {
      addComment(dora.doc, { id: 'c3', authorId: 'dora', body: 'Sneaky', parentId: null, anchor: null, resolved: false });
      dora.doc.getMap('quote').set('title', 'Changed by a commenter');
    });
    const refusal = await waitFor('refusal', () => dora.stateless.find((message) => message.type === 'concord:refused'));
    expect(refusal).toMatchObject({ code: 'comments-only' });
    expect(dora.provider.unsyncedChanges).toBeGreaterThan(0);

    editor.doc.getMap('quote').set('status', 'sent');
    await acknowledged(editor);
    await waitFor('the commenter sees later edits', () => dora.doc.getMap('quote').get('status') === 'sent');
    expect(editor.doc.getMap('quote').get('title')).toBe('Original');
    expect(editor.doc.getArray('comments').length).toBe(2);

    const logged = await rowsOf<{ user_id: string }>(shared.db, 'acme', 'SELECT user_id FROM document_updates WHERE name = $1 ORDER BY seq', [name]);
    // erin's title, carl's two comments and his resolve, erin's status: nothing of dora's.
    expect(logged.map((row) => row.user_id)).toEqual(['erin', 'carl', 'carl', 'carl', 'erin']);
    const changes = await fieldChanges(shared.db, 'acme', name);
    expect(changes.filter((change) => change.user_id === 'dora')).toEqual([]);
    expect(changes.filter((change) => change.entity === 'comment').map(({ entity_id, action, field, user_id }) => ({ entity_id, action, field, user_id }))).toEqual([
      { entity_id: 'c1', action: 'create', field: '*', user_id: 'carl' },
      { entity_id: 'c2', action: 'create', field: '*', user_id: 'carl' },
      { entity_id: 'c1', action: 'update', field: 'resolved', user_id: 'carl' },
    ]);
    expect((await quoteRow('comments'))!.title).toBe('Original');
  });

  it('PATCH applies live with the caller as author; invalid bodies change nothing', async () => {
    const name = 'acme/quote/patched';
    const watcher = await open(name, 'wendy');
    watcher.doc.transact(() => {
      watcher.doc.getMap('quote').set('title', 'Before');
      addLine(watcher.doc, { id: 'keep', quantity: 1, unitPrice: 5 });
      addLine(watcher.doc, { id: 'drop', quantity: 1, unitPrice: 1 });
    });
    await acknowledged(watcher);
    const bot = await token({ sub: 'erp-bot', role: 'editor' });
    const path = '/api/documents/quote/patched';

    // Malformed bodies are `bad-request`; values that break the layout are the rules' `invalid-value`, as over the WebSocket.
    const invalid: Array<[unknown, 'bad-request' | 'invalid-value', RegExp]> = [
      ['{not json', 'bad-request', /not JSON/],
      [{}, 'bad-request', /changes nothing/],
      [{ quote: { title: 'ok' }, lines: { update: [{ id: 'missing', quantity: 1 }] } }, 'bad-request', /no member has id "missing"/],
      [{ quote: { title: 'ok' }, color: 'red' }, 'bad-request', /color|Unrecognized/],
      [{ quote: { status: 'won' } }, 'invalid-value', /quote\.status/],
      [{ quote: { title: 'ok' }, lines: { add: [{ id: 'new', quantity: -2 }] } }, 'invalid-value', /quote_line\.quantity/],
      [{ quote: { title: 'ok' }, lines: { add: [{ id: 'keep' }] } }, 'invalid-value', /quote_line\.id: id "keep" is taken/],
      [{ lines: { add: [{ sku: 'no id' }] } }, 'invalid-value', /quote_line\.id: a member needs an id/],
      // Two ids Postgres would store alike (lone surrogates; Yjs's UTF-8 makes both U+FFFD) must not reach one INSERT.
      [{ lines: { add: [{ id: 'a\ud800' }, { id: 'a\udc00' }] } }, 'invalid-value', /quote_line\.id: id "a\ufffd" is taken/],
    ];
    const versionBefore = (await api(shared.server.httpUrl, bot, 'GET', path)).body.version;
    const changesBefore = (await fieldChanges(shared.db, 'acme', name)).length;
    for (const [body, code, message] of invalid) {
      const response = await api(shared.server.httpUrl, bot, 'PATCH', path, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.code, JSON.stringify(body)).toBe(code);
      expect(response.body.error.message).toMatch(message);
    }
    expect((await api(shared.server.httpUrl, bot, 'GET', path)).body.version).toBe(versionBefore);
    expect(await fieldChanges(shared.db, 'acme', name)).toHaveLength(changesBefore);
    expect(watcher.doc.getMap('quote').get('title')).toBe('Before');

    const patched = await api(shared.server.httpUrl, bot, 'PATCH', path, {
      quote: { title: 'After', status: 'sent', validUntil: '2026-12-31' },
      notes: 'Prices include delivery',
      lines: { update: [{ id: 'keep', quantity: 4 }], remove: ['drop'], add: [{ id: 'fresh', sku: 'F', quantity: 2, unitPrice: 0.125, position: 0 }] },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.version).toBe(versionBefore + 1);
    // keep: 4 x 5 = 20.00; fresh: 2 x 0.125 = 0.25.
    expect(patched.body.content).toMatchObject({ quote: { title: 'After', status: 'sent' }, notes: 'Prices include delivery', totals: { subtotal: 20.25, total: 20.25 } });
    await waitFor('the live client sees the patch', () => watcher.doc.getMap('quote').get('title') === 'After');
    expect(watcher.doc.getArray<Y.Map<unknown>>('lines').map((line) => line.get('id'))).toEqual(['fresh', 'keep']);
    expect(watcher.doc.getText('notes').toString()).toBe('Prices include delivery');

    const logged = await rowsOf<{ user_id: string; origin: string; seq: number }>(shared.db, 'acme', 'SELECT seq, user_id, origin FROM document_updates WHERE name = $1 ORDER BY seq DESC LIMIT 1', [name]);
    expect(logged[0]).toEqual({ seq: patched.body.version, user_id: 'erp-bot', origin: 'api' });
    const byApi = (await fieldChanges(shared.db, 'acme', name)).filter((change) => change.seq === patched.body.version);
    expect(new Set(byApi.map((change) => change.user_id))).toEqual(new Set(['erp-bot']));
    expect(byApi.map(({ entity, entity_id, field, action }) => `${entity}/${entity_id}/${field}/${action}`).sort()).toEqual(
      ['quote/patched/title/update', 'quote/patched/status/update', 'quote/patched/validUntil/update', 'quote/patched/notes/update', 'quote_line/keep/quantity/update', 'quote_line/drop/*/delete', 'quote_line/fresh/*/create'].sort(),
    );
    expect(await quoteRow('patched')).toMatchObject({ title: 'After', status: 'sent', valid_until: expect.anything(), subtotal: '20.25', version: patched.body.version, updated_by: 'erp-bot' });
    expect((await lineRows('patched')).map((line) => line.id)).toEqual(['fresh', 'keep']);

    const got = await api(shared.server.httpUrl, await token({ sub: 'vic', role: 'viewer' }), 'GET', path);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ name, version: patched.body.version, content: { quote: { title: 'After' }, lines: [{ id: 'fresh' }, { id: 'keep', quantity: 4 }] } });
  });

  it('the API refuses callers that may not read or edit, with the fitting status', async () => {
    const path = '/api/documents/quote/guarded';
    const editor = await token({ sub: 'erin' });
    expect((await api(shared.server.httpUrl, editor, 'PATCH', path, { quote: { title: 'Made by API' } })).status).toBe(200);
    const noToken = await fetch(`${shared.server.httpUrl}${path}`);
    expect(noToken.status).toBe(401);
    expect((await noToken.json()).error.code).toBe('bad-token');
    for (const role of ['viewer', 'commenter']) {
      const refused = await api(shared.server.httpUrl, await token({ sub: 'v', role }), 'PATCH', path, { quote: { title: 'x' } });
      expect(refused).toMatchObject({ status: 403, body: { error: { code: 'not-allowed' } } });
    }
    expect((await api(shared.server.httpUrl, await token({ docs: ['quote/other'] }), 'GET', path)).status).toBe(403);
    // The tenant comes from the token: another tenant's token addresses its own (absent) document.
    expect((await api(shared.server.httpUrl, await token({ tenant: 'globex' }), 'GET', path)).status).toBe(404);
    expect((await api(shared.server.httpUrl, editor, 'GET', '/api/documents/quote/never-written')).status).toBe(404);
    expect((await api(shared.server.httpUrl, editor, 'GET', '/api/documents/no-such-kind/i1')).body.error.code).toBe('unknown-kind');
    const big = await api(shared.server.httpUrl, editor, 'PATCH', path, { notes: 'x'.repeat(5 * 1024 * 1024) });
    expect(big.status).toBe(413);
  });

  it('values that break the layout are refused whole; stored ones (from before the rules) read as null, are counted and logged, and never stop the rest', async () => {
    const name = 'acme/quote/broken';
    const breakLayout = (doc: Y.Doc) =>
      doc.transact(() => {
        const quote = doc.getMap('quote');
        quote.set('title', 'Still projected');
        quote.set('status', 'won');
        quote.set('validUntil', '2026-02-30');
        quote.set('discountPct', 150);
        quote.set('currency', 'EUR');
        quote.set('customerName', 'has\u0000nul');
        addLine(doc, { id: 'ok', quantity: 2, unitPrice: 3 });
        addLine(doc, { id: 'bad', quantity: 'ten', unitPrice: 3, description: 'kept' });
        doc.getArray('lines').push(['not a map']);
        addLine(doc, { id: 'huge', quantity: 1e13, unitPrice: 5 });
      });

    // Sent live, the whole update is refused, naming every field it breaks.
    const sender = await open(name, 'mallory');
    const refusals: Array<Record<string, any>> = [];
    sender.provider.on('stateless', ({ payload }: { payload: string }) => refusals.push(JSON.parse(payload)));
    breakLayout(sender.doc);
    const refused = await waitFor('the refusal', () => refusals.find((message) => message.type === 'concord:refused'));
    expect(refused.code).toBe('invalid-value');
    expect(refused.fields.toSorted()).toEqual(['quote.customerName', 'quote.discountPct', 'quote.status', 'quote.validUntil', 'quote_line', 'quote_line.quantity'].toSorted());
    sender.provider.destroy();
    const untouched = await api(shared.server.httpUrl, await token({ sub: 'vic', role: 'viewer' }), 'GET', '/api/documents/quote/broken');
    expect(untouched.status === 404 || untouched.body.version === 0, JSON.stringify(untouched.body)).toBe(true);

    // The same values in a log written before the rules existed (imported, say): the document loads and reads them as null.
    const legacy = new Y.Doc();
    const updates: Uint8Array[] = [];
    legacy.on('update', (update: Uint8Array) => updates.push(update));
    breakLayout(legacy);
    await shared.db.transaction('acme', (sql) =>
      appendUpdates(sql, updates.map((update) => ({ document: parseDocumentName(name), update, userId: 'importer', origin: 'client' as const, receivedAt: new Date() }))),
    );
    const raw = await open(name, 'mallory');
    await waitFor('the stored lines', () => raw.doc.getArray('lines').length === 4);

    const { body } = await api(shared.server.httpUrl, await token({ sub: 'vic', role: 'viewer' }), 'GET', '/api/documents/quote/broken');
    expect(body.content.quote).toMatchObject({ title: 'Still projected', status: null, validUntil: null, discountPct: null, currency: 'EUR', customerName: null });
    expect(body.content.lines).toEqual([
      expect.objectContaining({ id: 'ok', quantity: 2 }),
      expect.objectContaining({ id: 'bad', quantity: null, unitPrice: 3, description: 'kept' }),
      expect.objectContaining({ id: 'huge', quantity: null, unitPrice: 5 }),
    ]);
    expect(body.content.totals).toEqual({ subtotal: null, total: null });
    expect(await quoteRow('broken')).toMatchObject({ title: 'Still projected', status: null, valid_until: null, discount_pct: null, currency: 'EUR', line_count: 3, subtotal: null, total: null });
    expect((await lineRows('broken')).map(({ id, quantity, line_total, description }) => ({ id, quantity, line_total, description }))).toEqual([
      { id: 'ok', quantity: '2', line_total: '6.00', description: null },
      { id: 'bad', quantity: null, line_total: null, description: 'kept' },
      { id: 'huge', quantity: null, line_total: null, description: null },
    ]);

    const metrics = await shared.server.metrics();
    for (const field of ['status', 'validUntil', 'discountPct', 'customerName', 'quantity', 'lines']) {
      expect(metrics.get(`concord_layout_violations_total{kind="quote",field="${field}"}`), field).toBeGreaterThanOrEqual(1);
    }
    expect(shared.server.logs).toMatch(/"code":"layout-violation","document":"acme\/quote\/broken","entity":"quote_line","entityId":"bad","field":"quantity"/);

    // Fixing the value projects it again, and the server kept serving throughout.
    lineById(raw.doc, 'bad')!.set('quantity', 10);
    lineById(raw.doc, 'huge')!.set('quantity', 0);
    await acknowledged(raw);
    expect((await lineRows('broken')).find((line) => line.id === 'bad')).toMatchObject({ quantity: '10', line_total: '30.00' });
    expect(await quoteRow('broken')).toMatchObject({ subtotal: '36.00' });
    expect((await fetch(`${shared.server.httpUrl}/healthz`)).status).toBe(200);
  });

  it('a projection Postgres refuses is rolled back alone: the update is logged and acknowledged, the tables rebuilt at the next load', async () => {
    // Stands in for a value no check foresaw: Postgres refuses one title.
    await shared.db.ownerTransaction(async (sql) => {
      await sql.exec(`
        CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.title = 'poison' THEN RAISE EXCEPTION 'poisoned title' USING ERRCODE = '22023'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON quotes FOR EACH ROW EXECUTE FUNCTION refuse_poison();`);
    });
    const poisoned = await open('acme/quote/poisoned', 'pat');
    const healthy = await open('acme/quote/healthy', 'pat');
    poisoned.doc.transact(() => {
      poisoned.doc.getMap('quote').set('title', 'poison');
      addLine(poisoned.doc, { id: 'p1', quantity: 1, unitPrice: 1 });
    });
    healthy.doc.getMap('quote').set('title', 'fine');
    await Promise.all([acknowledged(poisoned), acknowledged(healthy)]);

    const stale = await rowsOf<{ name: string; version: number; tables_stale: boolean }>(shared.db, 'acme', "SELECT name, version, tables_stale FROM documents WHERE name IN ('acme/quote/poisoned', 'acme/quote/healthy') ORDER BY name");
    expect(stale).toEqual([
      { name: 'acme/quote/healthy', version: 1, tables_stale: false },
      { name: 'acme/quote/poisoned', version: 1, tables_stale: true },
    ]);
    expect(await quoteRow('poisoned')).toBeUndefined();
    expect(await quoteRow('healthy')).toMatchObject({ title: 'fine', version: 1 });
    expect(shared.server.logs).toMatch(/"code":"projection-failed","document":"acme\/quote\/poisoned"/);
    // Its audit rows went with the tables, but its change event did not: an event exists for every committed change.
    expect(await fieldChanges(shared.db, 'acme', 'acme/quote/poisoned')).toEqual([]);
    const events = await rowsOf<{ type: string; data: any }>(shared.db, 'acme', "SELECT type, data FROM change_events WHERE name = 'acme/quote/poisoned' ORDER BY position");
    expect(events.map((event) => event.type)).toEqual(['document.created']);
    expect(events[0]!.data.changes.map((change: { field: string }) => change.field).sort()).toEqual(['*', 'title']);

    await shared.db.ownerTransaction((sql) => sql.exec('DROP TRIGGER refuse_poison ON quotes; DROP FUNCTION refuse_poison();'));
    shared.closeAll();
    await waitFor('unloaded', async () => !(await shared.server.metrics()).get('concord_loaded_documents'));
    await open('acme/quote/poisoned', 'pat');
    expect(await quoteRow('poisoned')).toMatchObject({ title: 'poison', line_count: 1, version: 1 });
    expect((await lineRows('poisoned')).map((line) => line.id)).toEqual(['p1']);
    const [{ tables_stale }] = (await rowsOf<{ tables_stale: boolean }>(shared.db, 'acme', "SELECT tables_stale FROM documents WHERE name = 'acme/quote/poisoned'")) as [{ tables_stale: boolean }];
    expect(tables_stale).toBe(false);
  });
});
