import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { browserAndServer, startReportEditorExample, textOf, waitForText } from './support/browser.ts';
import { acknowledged, connect, synced } from './support/clients.ts';
import { addLine, api, lineById } from './support/documents.ts';
import { token } from './support/tokens.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const tenant = 'acme';
const outputDir = fileURLToPath(new URL('../test-output/', import.meta.url));

/** A browser page that fails the test on any script error or console error. */
async function openPage(browser: Browser, url: string): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  await page.goto(url);
  return { page, problems };
}

/**
 * Holds the page's first request matching `matches` until `release()`, which
 * resolves once its answer has reached the page and the page's next timer
 * turn has run.
 */
async function heldOnce(page: Page, matches: (url: URL) => boolean): Promise<{ release(): Promise<void> }> {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  let heldUrl: string | undefined;
  await page.route(
    (url) => matches(url),
    async (route) => {
      if (heldUrl !== undefined) return route.continue();
      heldUrl = route.request().url();
      await opened;
      await route.continue();
    },
  );
  return {
    async release() {
      if (heldUrl === undefined) throw new Error('the request to hold was never made');
      const answered = page.waitForResponse((response) => response.url() === heldUrl);
      open();
      await answered;
      await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 50)));
    },
  };
}

/** Moves the version slider the way a user does: focus it and press an arrow key. */
async function slideTo(page: Page, seq: number): Promise<void> {
  const slider = page.locator('#version');
  await slider.focus();
  for (let value = Number(await slider.inputValue()); value !== seq; value += seq > value ? 1 : -1) {
    await page.keyboard.press(seq > value ? 'ArrowRight' : 'ArrowLeft');
  }
  try {
    await waitForText(page, '#shown-version', (text) => text === String(seq));
  } catch (error) {
    // What the page knew when it showed another version: the slider's value and any error it reported.
    throw new Error(`${(error as Error).message}; the slider is at ${await slider.inputValue()}, the page says ${JSON.stringify(await textOf(page, '#message'))}`);
  }
}

describe('history page in a browser', () => {
  it('an admin signs in, slides to older versions of a quote and a report, sees them, restores one, and a live editor shows it', async () => {
    const { browser, server } = await browserAndServer(cleanups);

    // A quote in three versions: created, a line's quantity raised, its title changed.
    const quoteName = `${tenant}/quote/q-7`;
    const sam = connect(server.wsUrl, quoteName, await token({ tenant, sub: 'sam', role: 'editor' }));
    cleanups.push(async () => sam.provider.destroy());
    await synced(sam);
    sam.doc.transact(() => {
      sam.doc.getMap('quote').set('title', 'Pumps for Riverside');
      sam.doc.getMap('quote').set('currency', 'EUR');
      addLine(sam.doc, { id: 'l1', sku: 'P-100', description: 'Pump', quantity: 2, unitPrice: 450 });
    });
    await acknowledged(sam);
    lineById(sam.doc, 'l1')!.set('quantity', 5);
    await acknowledged(sam);
    sam.doc.getMap('quote').set('title', 'Pumps for Riverside (revised)');
    await acknowledged(sam);

    // A report whose section is rewritten through the API.
    const reportName = `${tenant}/report/r-9`;
    const rita = connect(server.wsUrl, reportName, await token({ tenant, sub: 'rita', role: 'editor' }));
    cleanups.push(async () => rita.provider.destroy());
    await synced(rita);
    rita.doc.transact(() => {
      rita.doc.getMap('report').set('title', 'Platform report');
      const section = new Y.Map<unknown>([['id', 'findings'], ['title', 'Findings'], ['body', new Y.XmlFragment()]]);
      rita.doc.getArray('sections').push([section]);
      const paragraph = new Y.XmlElement('paragraph');
      paragraph.insert(0, [new Y.XmlText('All systems green')]);
      (section.get('body') as Y.XmlFragment).insert(0, [paragraph]);
    });
    await acknowledged(rita);
    const patched = await api(server.httpUrl, await token({ tenant, sub: 'pat', role: 'editor' }), 'PATCH', '/api/documents/report/r-9', {
      report: { title: 'Platform report (incident)' },
      sections: { update: [{ id: 'findings', text: 'Two servers down' }] },
    });
    expect(patched.status).toBe(200);
    rita.provider.destroy();

    // The live editor (the report editor example) on that section, in its own page.
    const example = await startReportEditorExample();
    cleanups.push(() => example.stop());
    const editor = await openPage(browser, example.url);
    await editor.page.fill('#url', server.wsUrl);
    await editor.page.fill('#token', await token({ tenant, sub: 'eve', role: 'editor', name: 'Eve' }));
    await editor.page.fill('#document', reportName);
    await editor.page.fill('#section', 'findings');
    await editor.page.click('#connect');
    await waitForText(editor.page, '.ProseMirror', (text) => text === 'Two servers down');

    // The history page: sign in; the token stays out of the URL and out of localStorage.
    const admin = await openPage(browser, `${server.httpUrl}/admin`);
    const adminToken = await token({ tenant, sub: 'ada', role: 'admin', name: 'Ada' });
    // Signing in loads the first document, this quote, and the user picks it again at once: the first
    // load's history is held until the user has moved the slider, and must not move it back when it lands.
    const firstLoad = await heldOnce(admin.page, (url) => url.pathname.endsWith('/quote/q-7/history') && url.searchParams.get('limit') === '1000');
    await admin.page.fill('#token', adminToken);
    await admin.page.click('#sign-in button[type=submit]');
    await waitForText(admin.page, '#document', (text) => text.includes('quote/q-7') && text.includes('report/r-9'));
    expect(admin.page.url()).toBe(`${server.httpUrl}/admin`);
    expect(await admin.page.evaluate(() => JSON.stringify(localStorage))).not.toContain(adminToken.slice(-20));

    // The quote: latest first, then two versions back.
    await admin.page.selectOption('#document', quoteName);
    await waitForText(admin.page, '#rendered', (text) => text.includes('Pumps for Riverside (revised)'));
    expect(await admin.page.locator('#timeline rect.bar').count()).toBeGreaterThan(0);
    expect(await textOf(admin.page, '#legend')).toContain('sam (3)');
    expect(await textOf(admin.page, '[data-testid=totals]')).toBe('Subtotal 2250.00 · Total 2250.00 EUR');
    await slideTo(admin.page, 1);
    const quoteV1 = await waitForText(admin.page, '#rendered', (text) => !text.includes('(revised)'));
    expect(quoteV1).toContain('Pumps for Riverside');
    expect(await textOf(admin.page, '[data-testid=totals]')).toBe('Subtotal 900.00 · Total 900.00 EUR');
    expect(await admin.page.locator('#rendered tbody td').nth(4).textContent()).toBe('2');
    await firstLoad.release();
    expect(await admin.page.locator('#version').inputValue()).toBe('1');
    expect(await textOf(admin.page, '#shown-version')).toBe('1');

    // The report: slide back to before the PATCH; see the old text, the differences and who changed what.
    await admin.page.selectOption('#document', reportName);
    await waitForText(admin.page, '#rendered', (text) => text.includes('Two servers down'));
    await slideTo(admin.page, 1);
    await waitForText(admin.page, '#rendered', (text) => text.includes('All systems green') && !text.includes('Two servers down'));
    expect(await textOf(admin.page, '#shown-meta')).toContain('by rita');
    // Compared with itself nothing differs; compared with version 2, the PATCH's changes show, oldest to newest.
    expect(await textOf(admin.page, '#diff')).toBe('no differences');
    await admin.page.locator('#base').focus();
    await admin.page.keyboard.press('ArrowRight');
    await waitForText(admin.page, '#diff', (text) => text.includes('report.title: Platform report → Platform report (incident)'));
    expect(await textOf(admin.page, '#diff')).toContain('sections findings.text: All systems green → Two servers down');
    await waitForText(admin.page, '#changes tbody', (text) => text.includes('pat') && text.includes('update report_section findings.body'));

    // Restore version 1, after confirming; the editor page shows the old text live.
    await admin.page.click('#restore');
    await waitForText(admin.page, '#confirm-text', (text) => text.includes('version 1'));
    await admin.page.click('#confirm-restore');
    await waitForText(admin.page, '#restore-result', (text) => text === 'Restored version 1 as version 3.');
    await waitForText(editor.page, '.ProseMirror', (text) => text === 'All systems green');
    await waitForText(admin.page, '#shown-version', (text) => text === '3');
    expect(await textOf(admin.page, '#shown-meta')).toContain('by ada');
    expect(await textOf(admin.page, '#rendered')).toContain('All systems green');

    mkdirSync(outputDir, { recursive: true });
    await admin.page.screenshot({ path: `${outputDir}history-page.png`, fullPage: true });
    await editor.page.screenshot({ path: `${outputDir}history-page-editor.png` });
    expect([...admin.problems, ...editor.problems]).toEqual([]);

    // The log says who restored what: one update by the admin, origin restore.
    const history = await api(server.httpUrl, adminToken, 'GET', '/api/documents/report/r-9/history');
    expect(history.body.updates.at(-1)).toMatchObject({ seq: 3, userId: 'ada', origin: 'restore' });
  });
});
