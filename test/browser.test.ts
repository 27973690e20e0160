import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { acknowledged, connect, synced } from './support/clients.ts';
import { browserAndServer, startReportEditorExample, waitForText as waitForPageText } from './support/browser.ts';
import { loggedUpdates, openTestDatabase } from './support/inspect.ts';
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
async function openEditor(browser: Browser, exampleUrl: string, wsUrl: string, user: { sub: string; name: string }) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  // Anything the page throws or logs as an error fails the test, as does a second copy of Yjs.
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`${user.sub}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' || message.text().includes('Yjs was already imported')) problems.push(`${user.sub}: ${message.text()}`);
  });
  await page.goto(exampleUrl);
  await page.fill('#url', wsUrl);
  await page.fill('#token', await token({ tenant, sub: user.sub, role: 'editor', name: user.name }));
  await page.fill('#document', documentName);
  await page.fill('#section', sectionId);
  await page.click('#connect');
  await waitForText(page, '#status', (status) => status === 'synced');
  return { page, problems };
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

    // The report and its (empty) section exist before anyone opens the page.
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
});
