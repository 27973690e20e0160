import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { acknowledged, connect, synced } from './support/clients.ts';
import { browserAndServer, startReportEditorExample, waitForText as waitForPageText } from './support/browser.ts';
import { loggedUpdates, openTestDatabase } from './support/inspect.ts';
import type { ServerProcess } from './support/server.ts';
import { token } from './support/tokens.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const tenant = 'acme';
const reportId = 'browser-r1';
const documentName = `${tenant}/report/${reportId}`;
const sectionId = 'findings';
const outputDir = fileURLToPath(new URL('../test-output/', import.meta.url));

/** Opens the example page in its own browser context and connects it as one user. */
async function openEditor(browser: Browser, exampleUrl: string, wsUrl: string, user: { sub: string; name: string; role?: string }) {
  const editor = await fillForm(browser, exampleUrl, wsUrl, await token({ tenant, sub: user.sub, role: user.role ?? 'editor', name: user.name }), user.sub);
  await editor.page.click('#connect');
  await waitForText(editor.page, '#status', (status) => status === 'synced');
  return editor;
}

/** The example page in its own browser context, its form filled in, not yet connected. */
async function fillForm(browser: Browser, exampleUrl: string, wsUrl: string, pageToken: string, label: string): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  // Anything the page throws or logs as an error fails the test, as does a second copy of Yjs.
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`${label}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' || message.text().includes('Yjs was already imported')) problems.push(`${label}: ${message.text()}`);
  });
  await page.goto(exampleUrl);
  await page.fill('#url', wsUrl);
  await page.fill('#token', pageToken);
  await page.fill('#document', documentName);
  await page.fill('#section', sectionId);
  return { page, problems };
}

/** The report and its (empty) section, before anyone opens the page. */
async function createReport(server: ServerProcess): Promise<void> {
  const setup = connect(server.wsUrl, documentName, await token({ tenant, sub: 'setup', role: 'editor' }));
  await synced(setup);
  setup.doc.transact(() => {
    const report = setup.doc.getMap('report');
    report.set('title', 'Platform monthly report');
    report.set('projectId', 'platform');
    report.set('period', '2026-10');
    report.set('status', 'draft');
    const section = new Y.Map<unknown>([
      ['id', sectionId],
      ['title', 'Findings'],
      ['body', new Y.XmlFragment()],
    ]);
    setup.doc.getArray<Y.Map<unknown>>('sections').push([section]);
  });
  await acknowledged(setup);
  setup.provider.destroy();
}

/** A loopback port nothing listens on. */
async function unusedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** The text of `selector` on the page, without the other people's carets (widgets labelled with their names). */
function textOf(page: Page, selector: string): Promise<string> {
  return page.locator(selector).evaluate((element) => {
    const copy = element.cloneNode(true) as Element;
    for (const caret of copy.querySelectorAll('.collaboration-carets__caret')) caret.remove();
    return copy.textContent ?? '';
  });
}

/** Waits until the text of `selector` on the page, carets left out, satisfies `check`. */
function waitForText(page: Page, selector: string, check: (text: string) => boolean): Promise<string> {
  return waitForPageText(page, selector, check, textOf);
}

describe('report editor example in a browser', () => {
  it('two people edit one section: both texts merge, each sees the other\'s caret, and the section reaches Postgres', async () => {
    const { browser, storage, server } = await browserAndServer(cleanups);

    await createReport(server);

    const example = await startReportEditorExample();
    cleanups.push(() => example.stop());

    const alice = await openEditor(browser, example.url, server.wsUrl, { sub: 'alice', name: 'Alice Auditor' });
    const bob = await openEditor(browser, example.url, server.wsUrl, { sub: 'bob', name: 'Bob Builder' });
    const aliceSentence = 'Alice measured the page load times.';
    const bobSentence = 'Bob found the slow query.';

    await alice.page.click('.ProseMirror');
    await alice.page.keyboard.type(aliceSentence);
    await waitForText(bob.page, '.ProseMirror', (text) => text.includes(aliceSentence));
    await bob.page.click('.ProseMirror');
    await bob.page.keyboard.press('Control+End');
    await bob.page.keyboard.type(` ${bobSentence}`);

    for (const { page } of [alice, bob]) {
      await waitForText(page, '.ProseMirror', (text) => text.includes(aliceSentence) && text.includes(bobSentence));
      expect(await textOf(page, '.ProseMirror')).toBe(`${aliceSentence} ${bobSentence}`);
    }
    // Each page shows the other's caret, labelled with their name, and lists them as present.
    for (const [{ page }, other] of [[alice, 'Bob Builder'], [bob, 'Alice Auditor']] as const) {
      await page.locator('.collaboration-carets__caret', { hasText: other }).waitFor({ state: 'visible', timeout: 15_000 });
      await waitForText(page, '#presence', (text) => text.includes(`${other} (editing section ${sectionId})`));
    }
    // Concord acknowledges only what is committed, so nothing typed is lost when the pages close.
    for (const { page } of [alice, bob]) await waitForText(page, '#saved', (text) => text === 'all changes saved');

    mkdirSync(outputDir, { recursive: true });
    await alice.page.screenshot({ path: `${outputDir}browser-alice.png` });
    await bob.page.screenshot({ path: `${outputDir}browser-bob.png` });
    expect([...alice.problems, ...bob.problems]).toEqual([]);
    await browser.close();

    // PGlite belongs to one process at a time: read it once the server has let go.
    if (storage.kind === 'pglite') await server.stop('SIGTERM');
    const db = await openTestDatabase(storage);
    cleanups.push(() => db.close());

    const writers = new Set((await loggedUpdates(db, tenant, documentName)).map((row) => row.user_id));
    expect(writers).toEqual(new Set(['setup', 'alice', 'bob']));

    // The section's row in report_sections carries the merged plain text (it may trail the log a little).
    const sectionRow = () =>
      db.transaction(tenant, async (sql) => {
        const { rows } = await sql.query<{ text: string | null }>('SELECT text FROM report_sections WHERE report_id = $1 AND id = $2', [reportId, sectionId]);
        return rows[0];
      });
    for (const sentence of [aliceSentence, bobSentence]) {
      await expect.poll(sectionRow, { timeout: 10_000, message: 'report_sections row of the section' }).toMatchObject({ text: expect.stringContaining(sentence) });
    }
  });

  it('says in words that a viewer cannot type, that the server URL is wrong and why the server refused the token', async () => {
    const { browser, server } = await browserAndServer(cleanups);
    await createReport(server);
    const example = await startReportEditorExample();
    cleanups.push(() => example.stop());

    // A viewer: the editor takes no typing, and the page says so instead of "all changes saved".
    const viewer = await openEditor(browser, example.url, server.wsUrl, { sub: 'vera', name: 'Vera Viewer', role: 'viewer' });
    expect(await textOf(viewer.page, '#mode')).toBe('Read-only: your role (viewer) may not change this section; the editor does not take typing.');
    expect(await viewer.page.getAttribute('.ProseMirror', 'contenteditable')).toBe('false');
    await viewer.page.click('.ProseMirror');
    await viewer.page.keyboard.type('Typed by a viewer');
    expect(await textOf(viewer.page, '.ProseMirror')).toBe('');
    expect(await textOf(viewer.page, '#saved')).toBe('read-only: nothing to save');
    expect(await textOf(viewer.page, '#message')).toBe('');
    expect(viewer.problems).toEqual([]);

    // Nothing listens at the URL: the page says it cannot reach the server, not just "disconnected".
    const port = await unusedPort();
    const { page } = await fillForm(browser, example.url, `ws://127.0.0.1:${port}`, await token({ tenant, sub: 'alice', role: 'editor' }), 'alice');
    await page.click('#connect');
    await waitForText(page, '#connection', (text) => text.startsWith(`Cannot reach a Concord server at ws://127.0.0.1:${port} (`) && text.includes('Check the URL'));
    expect(await textOf(page, '#status')).not.toBe('synced');

    // An HTTP address where the WebSocket URL belongs.
    await page.fill('#url', server.httpUrl);
    await page.click('#connect');
    await waitForText(page, '#connection', (text) => text.startsWith(`"${server.httpUrl}" is not a WebSocket URL`));
    expect(await textOf(page, '#status')).toBe('not connected');

    // The right server, a token signed with another secret.
    await page.fill('#url', server.wsUrl);
    await page.fill('#token', await token({ tenant, sub: 'alice', role: 'editor', secret: 'a-secret-this-server-does-not-use-0123' }));
    await page.click('#connect');
    await waitForText(page, '#message', (text) => text.startsWith(`The server refused to open ${documentName}: the server does not accept this token`) && text.endsWith('(bad-token).'));
    expect(await textOf(page, '#status')).toBe('refused');
    expect(await textOf(page, '#connection')).toBe('');
  });
});
