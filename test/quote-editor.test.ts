import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import type { Browser, Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { textDifference } from '../examples/quote-editor/text-binding.ts';
import { acknowledged, connect, synced } from './support/clients.ts';
import { browserAndServer, startQuoteEditorExample, textOf, waitForText } from './support/browser.ts';
import { api } from './support/documents.ts';
import { openTestDatabase, rowsOf } from './support/inspect.ts';
import type { ServerProcess } from './support/server.ts';
import { TcpProxy } from './support/tcp-proxy.ts';
import { token } from './support/tokens.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const tenant = 'acme';
const quoteId = 'browser-q1';
const documentName = `${tenant}/quote/${quoteId}`;
const initialTitle = 'Pumps';
const initialNotes = 'Delivery in May.';
const outputDir = fileURLToPath(new URL('../test-output/', import.meta.url));

/** The quote before anyone opens the page: two lines, l-1 priced so that binary rounding and decimal half-up differ. */
async function createQuote(server: ServerProcess): Promise<void> {
  const setup = connect(server.wsUrl, documentName, await token({ tenant, sub: 'setup', role: 'editor' }));
  await synced(setup);
  setup.doc.transact(() => {
    const header = setup.doc.getMap('quote');
    for (const [key, value] of Object.entries({ number: 'Q-1', title: initialTitle, customerName: 'ACME', status: 'draft', currency: 'EUR', discountPct: 0, taxPct: 20 })) {
      header.set(key, value);
    }
    const line = (fields: Record<string, unknown>) => new Y.Map<unknown>(Object.entries({ sku: '', description: '', discountPct: 0, ...fields }));
    setup.doc.getArray('lines').push([
      line({ id: 'l-1', sku: 'P-1', quantity: 1, unitPrice: 1.005 }),
      line({ id: 'l-2', sku: 'P-2', quantity: 1, unitPrice: 100, discountPct: 12.5 }),
    ]);
    setup.doc.getText('notes').insert(0, initialNotes);
  });
  await acknowledged(setup);
  setup.provider.destroy();
}

interface OpenPage {
  page: Page;
  /** Errors the page threw or logged. */
  problems: string[];
}

/** Opens the example page in its own browser context and connects it as one user. */
async function openQuote(browser: Browser, exampleUrl: string, wsUrl: string, user: { sub: string; name: string; role: string }): Promise<OpenPage> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`${user.sub}: ${error.message}`));
  page.on('console', (message) => {
    // A refused socket (the connection cut on purpose) is logged by Chromium itself.
    if (message.type() === 'error' && /WebSocket connection to .* failed/.test(message.text())) return;
    if (message.type() === 'error' || message.text().includes('Yjs was already imported')) problems.push(`${user.sub}: ${message.text()}`);
  });
  await page.goto(exampleUrl);
  await page.fill('#url', wsUrl);
  await page.fill('#token', await token({ tenant, sub: user.sub, role: user.role, name: user.name }));
  await page.fill('#document', documentName);
  await page.click('#connect');
  await waitForText(page, '#status', (status) => status === 'synced');
  return { page, problems };
}

/** Types a value into an input and commits it (Enter), as a user does. */
async function enter(page: Page, selector: string, value: string): Promise<void> {
  await page.fill(selector, value);
  await page.press(selector, 'Enter');
}

function waitForValue(page: Page, selector: string, value: string): Promise<unknown> {
  return expect.poll(() => page.inputValue(selector), { timeout: 20_000, message: `value of ${selector}` }).toBe(value);
}

const lineOrder = (page: Page) => page.$$eval('#lines tr', (rows) => rows.map((row) => (row as HTMLElement).dataset.lineId));
const lineInput = (lineId: string, field: string) => `tr[data-line-id="${lineId}"] input[data-line-field="${field}"]`;

/** Waits for the page to show a refused write (its code, and `fields` if given) and to stop sending. */
async function refused(page: Page, code: string, fields: string[] = []): Promise<string> {
  const message = await waitForText(
    page,
    '#message',
    (text) => text.startsWith('The server refused a change:') && text.includes(`(${code}`) && fields.every((field) => text.includes(field)) && text.endsWith("press Reload to go on from the server's copy."),
  );
  expect(await textOf(page, '#status')).toBe('stopped');
  expect(await page.isVisible('#reload')).toBe(true);
  return message;
}

/** Presses Reload: a fresh replica from the server, the message gone. */
async function reload(page: Page): Promise<void> {
  await page.click('#reload');
  await waitForText(page, '#status', (status) => status === 'synced');
  expect(await textOf(page, '#message')).toBe('');
  expect(await page.isVisible('#reload')).toBe(false);
}

async function allSaved(...pages: OpenPage[]): Promise<void> {
  for (const { page } of pages) await waitForText(page, '#saved', (text) => text === 'all changes saved');
}

async function serverQuote(server: ServerProcess): Promise<{ quote: Record<string, unknown>; notes: string; lines: Array<Record<string, unknown>>; comments: Array<Record<string, unknown>>; totals: { subtotal: number; total: number } }> {
  const response = await server.get(`/api/documents/quote/${quoteId}`, await token({ tenant, sub: 'reader', role: 'viewer' }));
  expect(response.status).toBe(200);
  return ((await response.json()) as { content: never }).content;
}

describe('quote editor example in a browser', () => {
  it('two editors edit one quote (header, lines, notes, a comment), see each other, match the server totals and merge an offline edit', { timeout: 240_000 }, async () => {
    const { browser, storage, server } = await browserAndServer(cleanups);
    await createQuote(server);
    const example = await startQuoteEditorExample();
    cleanups.push(() => example.stop());
    // Bob reaches the server through a proxy, so that his connection can be cut.
    const proxy = await new TcpProxy({ host: '127.0.0.1', port: server.port }).listen();
    cleanups.push(() => proxy.close());

    const alice = await openQuote(browser, example.url, server.wsUrl, { sub: 'alice', name: 'Alice Editor', role: 'editor' });
    const bob = await openQuote(browser, example.url, `ws://127.0.0.1:${proxy.port}`, { sub: 'bob', name: 'Bob Builder', role: 'editor' });
    for (const { page } of [alice, bob]) {
      expect(await textOf(page, '#mode')).toBe('Editing as editor.');
      // Decimal, half-up: 1 * 1.005 is 1.01 (binary floating point rounds it to 1.00).
      await waitForText(page, 'tr[data-line-id="l-1"] .line-total', (text) => text === '1.01');
    }

    // A header field.
    await enter(alice.page, '#field-title', 'Pumps and valves');
    await waitForValue(bob.page, '#field-title', 'Pumps and valves');

    // Lines: Bob adds one, Alice edits a quantity, Bob moves his line up, Alice removes l-2.
    await bob.page.click('#add-line');
    await expect.poll(() => lineOrder(bob.page)).toHaveLength(3);
    const added = (await lineOrder(bob.page))[2]!;
    expect(added).not.toMatch(/^l-[12]$/);
    await enter(bob.page, lineInput(added, 'sku'), 'V-9');
    await enter(bob.page, lineInput(added, 'quantity'), '4');
    await enter(bob.page, lineInput(added, 'unitPrice'), '2.5');
    await waitForValue(alice.page, lineInput(added, 'unitPrice'), '2.5');
    await enter(alice.page, lineInput('l-1', 'quantity'), '3');
    await waitForValue(bob.page, lineInput('l-1', 'quantity'), '3');
    await bob.page.click(`tr[data-line-id="${added}"] .move-up`);
    await expect.poll(() => lineOrder(alice.page), { timeout: 20_000 }).toEqual(['l-1', added, 'l-2']);
    await alice.page.click('tr[data-line-id="l-2"] .remove-line');
    await expect.poll(() => lineOrder(bob.page), { timeout: 20_000 }).toEqual(['l-1', added]);
    // The moved line kept its values.
    expect(await bob.page.inputValue(lineInput(added, 'sku'))).toBe('V-9');

    // Notes: both type, at either end; the texts merge character-wise.
    await alice.page.click('#notes');
    await alice.page.keyboard.press('Control+End');
    await alice.page.keyboard.type(' Crane needed.');
    await waitForValue(bob.page, '#notes', `${initialNotes} Crane needed.`);
    await bob.page.click('#notes');
    await bob.page.keyboard.press('Control+Home');
    await bob.page.keyboard.type('Urgent: ');
    const notes = `Urgent: ${initialNotes} Crane needed.`;
    for (const { page } of [alice, bob]) await waitForValue(page, '#notes', notes);

    // A comment on a line, and a reply.
    await alice.page.click('tr[data-line-id="l-1"] .comment-on');
    await alice.page.fill('#comment-body', 'Is 1.005 the list price?');
    await alice.page.click('#add-comment');
    await waitForText(bob.page, 'tr[data-line-id="l-1"] .comment-on', (text) => text === 'Comments (1)');
    await bob.page.click('tr[data-line-id="l-1"] .comment-on');
    await waitForText(bob.page, '#threads', (text) => text.includes('Alice Editor: Is 1.005 the list price?'));
    await bob.page.click('#threads li .reply');
    await bob.page.fill('#comment-body', 'Yes, until June. @alice');
    await bob.page.click('#add-comment');
    await waitForText(alice.page, '#threads', (text) => text.includes('Bob Builder: Yes, until June. @alice (notifies Alice Editor)'));
    // The mention is in the document and became a comment.mentioned event for alice.
    await allSaved(bob);
    const reply = (await serverQuote(server)).comments.find((comment) => comment.body === 'Yes, until June. @alice');
    expect(reply).toMatchObject({ authorId: 'bob', mentions: ['alice'] });
    const feed = await server.get(`/api/documents/quote/${quoteId}/events?type=comment.mentioned`, await token({ tenant, sub: 'reader', role: 'viewer' }));
    expect(((await feed.json()) as { events: Array<{ actor: string; data: unknown }> }).events.map(({ actor, data }) => ({ actor, data }))).toEqual([
      { actor: 'bob', data: { commentId: reply!.id, userId: 'alice' } },
    ]);

    // Who is where: a header field, a line cell.
    await alice.page.focus('#field-customerName');
    await waitForText(bob.page, '.field[data-field="customerName"] .who', (text) => text === 'Alice Editor');
    await bob.page.focus(lineInput('l-1', 'unitPrice'));
    await waitForText(alice.page, 'tr[data-line-id="l-1"] .who', (text) => text === 'Bob Builder: unitPrice');
    await waitForText(alice.page, '#presence', (text) => text.includes('Bob Builder (editing line l-1 unitPrice)'));
    await waitForText(bob.page, '#presence', (text) => text.includes('Alice Editor (editing customerName)'));

    // Totals: what both pages show is what the server computes from its own copy.
    await allSaved(alice, bob);
    let content = await serverQuote(server);
    expect(content.lines.map((line) => line.id)).toEqual(['l-1', added]);
    for (const { page } of [alice, bob]) {
      await waitForText(page, '#subtotal', (text) => text === content.totals.subtotal.toFixed(2));
      await waitForText(page, '#total', (text) => text === content.totals.total.toFixed(2));
      // 3 * 1.005 = 3.015, half-up: 3.02.
      expect(await textOf(page, 'tr[data-line-id="l-1"] .line-total')).toBe('3.02');
    }

    // Bob goes offline; both edit; he comes back.
    proxy.cut();
    await waitForText(bob.page, '#connection', (text) => text.startsWith(`Lost the connection to ws://127.0.0.1:${proxy.port}`));
    await enter(bob.page, '#field-customerName', 'Offline Customer Ltd');
    await enter(bob.page, lineInput(added, 'description'), 'Valve, typed offline');
    await enter(alice.page, '#field-taxPct', '25');
    await enter(alice.page, lineInput('l-1', 'unitPrice'), '2');
    await waitForText(bob.page, '#saved', (text) => text.startsWith('saving'));
    proxy.restore();
    // The provider retries with a growing delay, up to about as long as it was offline.
    await expect.poll(() => textOf(bob.page, '#connection'), { timeout: 60_000, message: "Bob's connection line" }).toBe('');
    for (const { page } of [alice, bob]) {
      await waitForValue(page, '#field-customerName', 'Offline Customer Ltd');
      await waitForValue(page, lineInput(added, 'description'), 'Valve, typed offline');
      await waitForValue(page, '#field-taxPct', '25');
      await waitForValue(page, lineInput('l-1', 'unitPrice'), '2');
    }
    await allSaved(alice, bob);
    content = await serverQuote(server);
    expect(content.quote).toMatchObject({ title: 'Pumps and valves', customerName: 'Offline Customer Ltd', taxPct: 25 });
    expect(content.notes).toBe(notes);
    expect(content.lines).toEqual([
      expect.objectContaining({ id: 'l-1', quantity: 3, unitPrice: 2 }),
      expect.objectContaining({ id: added, sku: 'V-9', description: 'Valve, typed offline', quantity: 4, unitPrice: 2.5 }),
    ]);
    expect(content.comments).toEqual([
      expect.objectContaining({ authorId: 'alice', anchor: 'line:l-1', parentId: null, body: 'Is 1.005 the list price?' }),
      expect.objectContaining({ authorId: 'bob', parentId: content.comments[0]!.id, body: 'Yes, until June. @alice', mentions: ['alice'] }),
    ]);
    for (const { page } of [alice, bob]) {
      await waitForText(page, '#subtotal', (text) => text === content.totals.subtotal.toFixed(2));
      await waitForText(page, '#total', (text) => text === content.totals.total.toFixed(2));
    }
    mkdirSync(outputDir, { recursive: true });
    await alice.page.screenshot({ path: `${outputDir}quote-editor-alice.png`, fullPage: true });
    expect([...alice.problems, ...bob.problems]).toEqual([]);
    await browser.close();

    // The tables (PGlite belongs to one process at a time: read it once the server has let go).
    if (storage.kind === 'pglite') await server.stop('SIGTERM');
    const db = await openTestDatabase(storage);
    cleanups.push(() => db.close());
    const quoteRow = () => rowsOf(db, tenant, 'SELECT title, customer_name, tax_pct::text, total::text FROM quotes WHERE id = $1', [quoteId]);
    await expect
      .poll(quoteRow, { timeout: 10_000 })
      .toEqual([{ title: 'Pumps and valves', customer_name: 'Offline Customer Ltd', tax_pct: '25', total: content.totals.total.toFixed(2) }]);
    const lineRows = await rowsOf(db, tenant, 'SELECT id, position, description FROM quote_lines WHERE quote_id = $1 ORDER BY position', [quoteId]);
    expect(lineRows).toEqual([
      { id: 'l-1', position: 0, description: '' },
      { id: added, position: 1, description: 'Valve, typed offline' },
    ]);
  });

  it('a viewer reads only and a commenter only comments; a forced write is refused in words, stops the page, and Reload loads the document again', { timeout: 240_000 }, async () => {
    const { browser, server } = await browserAndServer(cleanups);
    await createQuote(server);
    const example = await startQuoteEditorExample();
    cleanups.push(() => example.stop());

    const viewer = await openQuote(browser, example.url, server.wsUrl, { sub: 'vera', name: 'Vera Viewer', role: 'viewer' });
    const commenter = await openQuote(browser, example.url, server.wsUrl, { sub: 'carol', name: 'Carol Commenter', role: 'commenter' });

    expect(await textOf(viewer.page, '#mode')).toMatch(/^Read-only: your role \(viewer\)/);
    expect(await textOf(viewer.page, '#saved')).toBe('read-only: nothing to save');
    expect(await textOf(commenter.page, '#mode')).toMatch(/^Comments only: your role \(commenter\)/);
    for (const { page } of [viewer, commenter]) {
      for (const control of ['#field-title', '#field-status', '#add-line', lineInput('l-1', 'quantity'), 'tr[data-line-id="l-1"] .remove-line']) {
        expect(await page.isDisabled(control), control).toBe(true);
      }
      expect(await page.$eval('#notes', (area) => (area as HTMLTextAreaElement).readOnly)).toBe(true);
    }
    expect(await viewer.page.isDisabled('#add-comment')).toBe(true);
    expect(await commenter.page.isDisabled('#add-comment')).toBe(false);

    // The commenter comments on a header field; the viewer sees it.
    await commenter.page.click('.field[data-field="title"] .comment-on');
    await commenter.page.fill('#comment-body', 'Title needs the model number.');
    await commenter.page.click('#add-comment');
    await allSaved(commenter);
    await waitForText(viewer.page, '.field[data-field="title"] .comment-on', (text) => text === 'Comments (1)');
    expect((await serverQuote(server)).comments).toEqual([
      expect.objectContaining({ authorId: 'carol', anchor: 'field:title', body: 'Title needs the model number.', resolved: false }),
    ]);

    // A page that writes anyway (its controls enabled by hand) is refused by the server and says so;
    // it stops, still showing what was refused, until the user reloads it.
    for (const [{ page }, code] of [
      [viewer, 'read-only'],
      [commenter, 'comments-only'],
    ] as const) {
      await page.$eval('#field-title', (input) => ((input as HTMLInputElement).disabled = false));
      await enter(page, '#field-title', 'Forced title');
      await refused(page, code);
      expect(await page.inputValue('#field-title')).toBe('Forced title');
      expect(await page.isDisabled('#field-title')).toBe(true);
      expect(await page.isDisabled('#add-comment')).toBe(true);
      await reload(page);
      await waitForValue(page, '#field-title', initialTitle);
      expect(await page.isDisabled('#field-title')).toBe(true);
    }
    expect((await serverQuote(server)).quote.title).toBe(initialTitle);
    // After its reload the commenter still comments.
    await commenter.page.click('.field[data-field="title"] .comment-on');
    await commenter.page.click('#threads li .resolve');
    await allSaved(commenter);
    expect((await serverQuote(server)).comments).toEqual([expect.objectContaining({ authorId: 'carol', resolved: true })]);
    mkdirSync(outputDir, { recursive: true });
    await viewer.page.screenshot({ path: `${outputDir}quote-editor-viewer.png`, fullPage: true });
    expect([...viewer.problems, ...commenter.problems]).toEqual([]);
  });
});

describe('quote editor example and the business rules (frozen, locked, refused)', () => {
  it("shows a quote an admin accepts as frozen (comments open, an admin reopens it), lines others lock and the user's own lock, and a write the server refuses with its fields", { timeout: 240_000 }, async () => {
    const { browser, server } = await browserAndServer(cleanups);
    await createQuote(server);
    const example = await startQuoteEditorExample();
    cleanups.push(() => example.stop());
    const alice = await openQuote(browser, example.url, server.wsUrl, { sub: 'alice', name: 'Alice Editor', role: 'editor' });
    const adam = await openQuote(browser, example.url, server.wsUrl, { sub: 'adam', name: 'Adam Admin', role: 'admin' });
    const bob = await token({ tenant, sub: 'bob', role: 'editor', name: 'Bob Builder' });
    const admin = await token({ tenant, sub: 'root', role: 'admin', name: 'Root' });
    const locksPath = `/api/documents/quote/${quoteId}/locks`;
    const lineControls = (lineId: string) => [lineInput(lineId, 'quantity'), lineInput(lineId, 'unitPrice'), `tr[data-line-id="${lineId}"] .remove-line`];
    const disabled = (page: Page, selectors: string[]) => Promise.all(selectors.map((selector) => page.isDisabled(selector)));

    // Another user locks line l-1 over HTTP: both pages say by whom and take nothing in it.
    expect(await api(server.httpUrl, bob, 'POST', locksPath, { target: 'line:l-1' })).toMatchObject({ status: 201, body: { target: 'line:l-1', userId: 'bob', name: 'Bob Builder' } });
    for (const { page } of [alice, adam]) {
      await waitForText(page, 'tr[data-line-id="l-1"] .lock', (text) => text === 'locked by Bob Builder');
      expect(await disabled(page, lineControls('l-1'))).toEqual([true, true, true]);
      expect(await disabled(page, lineControls('l-2'))).toEqual([false, false, false]);
    }
    // A page that asks anyway (the input enabled by hand) is refused the lock, says by whom, and carries on.
    await alice.page.$eval(lineInput('l-1', 'quantity'), (input) => ((input as HTMLInputElement).disabled = false));
    await alice.page.focus(lineInput('l-1', 'quantity'));
    await waitForText(alice.page, '#message', (text) => text.startsWith('The server refused the lock on line:l-1:') && text.includes('(Bob Builder) (locked'));
    await alice.page.focus('#field-title');
    expect(await textOf(alice.page, '#status')).toBe('synced');
    expect((await api(server.httpUrl, bob, 'GET', locksPath)).body.locks).toEqual([expect.objectContaining({ target: 'line:l-1', userId: 'bob' })]);
    const released = await fetch(`${server.httpUrl}${locksPath}/${encodeURIComponent('line:l-1')}`, { method: 'DELETE', headers: { authorization: `Bearer ${bob}` } });
    expect(released.status).toBe(204);
    for (const { page } of [alice, adam]) {
      await waitForText(page, 'tr[data-line-id="l-1"] .lock', (text) => text === '');
      expect(await disabled(page, lineControls('l-1'))).toEqual([false, false, false]);
    }

    // Alice is in line l-2: she holds its lock, the others see it (and Bob cannot take it); leaving releases it.
    await alice.page.focus(lineInput('l-2', 'quantity'));
    await waitForText(alice.page, 'tr[data-line-id="l-2"] .lock', (text) => text === 'locked by you');
    await waitForText(adam.page, 'tr[data-line-id="l-2"] .lock', (text) => text === 'locked by Alice Editor');
    expect(await disabled(adam.page, lineControls('l-2'))).toEqual([true, true, true]);
    expect((await api(server.httpUrl, bob, 'GET', locksPath)).body.locks).toEqual([expect.objectContaining({ target: 'line:l-2', userId: 'alice', name: 'Alice Editor' })]);
    expect(await api(server.httpUrl, bob, 'POST', locksPath, { target: 'line:l-2' })).toMatchObject({ status: 409, body: { error: { code: 'locked', holder: { userId: 'alice' } } } });
    await alice.page.focus('#field-title');
    await waitForText(adam.page, 'tr[data-line-id="l-2"] .lock', (text) => text === '');
    expect(await disabled(adam.page, lineControls('l-2'))).toEqual([false, false, false]);
    // Each page hears the release on its own connection: Alice's may come after Adam's.
    await waitForText(alice.page, 'tr[data-line-id="l-2"] .lock', (text) => text === '');
    expect((await api(server.httpUrl, bob, 'GET', locksPath)).body.locks).toEqual([]);

    // The tenant reserves line prices for admins: the page cannot know, so the server refuses Alice's price and names the field.
    expect((await api(server.httpUrl, admin, 'PUT', '/api/policies/fields', { 'quote_line.unitPrice': 'admin' })).status).toBe(200);
    // Every instance enforces a change within a second (its policy cache).
    await sleep(1_100);
    await enter(alice.page, lineInput('l-1', 'unitPrice'), '9');
    await refused(alice.page, 'field-not-allowed', ['quote_line.unitPrice']);
    // Stopped, the page still shows what was refused, and takes nothing more.
    expect(await alice.page.inputValue(lineInput('l-1', 'unitPrice'))).toBe('9');
    expect(await disabled(alice.page, ['#field-title', ...lineControls('l-2'), '#add-comment'])).toEqual([true, true, true, true, true]);
    expect(await textOf(alice.page, '#presence')).toBe('');
    await reload(alice.page);
    await waitForValue(alice.page, lineInput('l-1', 'unitPrice'), '1.005');
    // The admin may change the price.
    await enter(adam.page, lineInput('l-1', 'unitPrice'), '2');
    await waitForValue(alice.page, lineInput('l-1', 'unitPrice'), '2');
    await allSaved(adam);
    expect((await serverQuote(server)).lines[0]).toMatchObject({ id: 'l-1', unitPrice: 2 });

    // An admin accepts the quote over HTTP: both pages show it frozen; only comments stay open.
    expect((await api(server.httpUrl, admin, 'PATCH', `/api/documents/quote/${quoteId}`, { quote: { status: 'accepted' } })).status).toBe(200);
    for (const { page } of [alice, adam]) {
      await waitForText(page, '#frozen', (text) => text.startsWith('Accepted: this quote is frozen; comments stay open; an admin can reopen it.'));
      expect(await disabled(page, ['#field-title', '#field-discountPct', '#add-line', ...lineControls('l-1')])).toEqual([true, true, true, true, true, true]);
      expect(await page.$eval('#notes', (area) => (area as HTMLTextAreaElement).readOnly)).toBe(true);
      expect(await page.isDisabled('#add-comment')).toBe(false);
    }
    // Leaving a frozen status is for admins: Alice's status is fixed; Adam may reopen, or send it, and nothing else.
    expect(await alice.page.isDisabled('#field-status')).toBe(true);
    expect(await alice.page.isVisible('#reopen')).toBe(false);
    expect(await adam.page.isVisible('#reopen')).toBe(true);
    expect(await adam.page.isDisabled('#field-status')).toBe(false);
    expect(await adam.page.$$eval('#field-status option:not(:disabled)', (options) => options.map((option) => (option as HTMLOptionElement).value))).toEqual(['draft', 'sent', 'accepted']);
    await alice.page.fill('#comment-body', 'Signed copy received.');
    await alice.page.click('#add-comment');
    await allSaved(alice);
    expect((await serverQuote(server)).comments).toEqual([expect.objectContaining({ authorId: 'alice', body: 'Signed copy received.' })]);
    mkdirSync(outputDir, { recursive: true });
    await alice.page.screenshot({ path: `${outputDir}quote-editor-frozen.png`, fullPage: true });

    // A content write forced through anyway (the input enabled by hand) is refused as frozen, naming the field.
    await alice.page.$eval('#field-title', (input) => ((input as HTMLInputElement).disabled = false));
    await enter(alice.page, '#field-title', 'Forced title');
    await refused(alice.page, 'document-frozen', ['quote.title']);
    await reload(alice.page);
    await waitForValue(alice.page, '#field-title', initialTitle);
    await waitForText(alice.page, '#frozen', (text) => text.startsWith('Accepted: this quote is frozen'));

    // The admin reopens it: back to draft, editable again on both pages.
    await adam.page.click('#reopen');
    for (const { page } of [alice, adam]) {
      await waitForValue(page, '#field-status', 'draft');
      await expect.poll(() => page.isVisible('#frozen'), { timeout: 20_000 }).toBe(false);
    }
    expect(await disabled(alice.page, ['#field-title', '#field-status', '#add-line', ...lineControls('l-2')])).toEqual([false, false, false, false, false, false]);
    await enter(alice.page, '#field-title', 'Pumps, revised');
    await allSaved(alice, adam);
    expect((await serverQuote(server)).quote).toMatchObject({ status: 'draft', title: 'Pumps, revised' });
    expect([...alice.problems, ...adam.problems]).toEqual([]);
  });
});

describe('quote editor notes binding (examples/quote-editor/text-binding.ts)', () => {
  it("sends a notes edit as one delete and insert that turn the text into the textarea's, never splitting a surrogate pair", () => {
    // Emoji that share their first UTF-16 unit, so edits between them differ in the second unit only.
    const character = fc.constantFrom('a', 'b', ' ', '\u{1F600}', '\u{1F603}', '\u{1F642}');
    const text = fc.string({ unit: character });
    fc.assert(
      fc.property(text, text, (before, after) => {
        const { start, deleted, inserted } = textDifference(before, after);
        const notes = new Y.Doc().getText('notes');
        notes.insert(0, before);
        notes.delete(start, deleted);
        notes.insert(start, inserted);
        expect(notes.toString()).toBe(after);
        for (const kept of [before.slice(0, start), before.slice(start + deleted), inserted]) expect(kept.isWellFormed()).toBe(true);
      }),
      { numRuns: 500 },
    );
    // Typing (an insertion anywhere) rewrites none of the existing text, beyond at most the one character it splits.
    fc.assert(
      fc.property(fc.array(character), fc.nat(), fc.string({ unit: character, minLength: 1 }), (characters, at, typed) => {
        const position = at % (characters.length + 1);
        const before = characters.join('');
        const after = characters.slice(0, position).join('') + typed + characters.slice(position).join('');
        expect(textDifference(before, after).deleted).toBeLessThanOrEqual(2);
      }),
      { numRuns: 500 },
    );
  });
});
