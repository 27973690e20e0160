import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { onTestFailed } from 'vitest';
import { waitFor } from './clients.ts';
import { createStorage, type TestStorage } from './database.ts';
import { ServerProcess } from './server.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Debian's chromium package; CHROMIUM_PATH points elsewhere. */
export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** A headless Chromium from the system: these tests never download a browser. */
export async function launchChromium(): Promise<Browser> {
  // A missing browser fails the test with what to do; it is never a reason to skip.
  if (!existsSync(chromiumPath)) {
    throw new Error(`no Chromium at ${chromiumPath}: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH`);
  }
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/**
 * Chromium (first, so that a missing browser is the first thing a test
 * reports), a fresh storage and a Concord server on it, each cleaned up after
 * the test through `cleanups`; the server's output is printed if the test fails.
 */
export async function browserAndServer(cleanups: Array<() => Promise<void>>): Promise<{ browser: Browser; storage: TestStorage; server: ServerProcess }> {
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const storage = await createStorage();
  cleanups.push(() => storage.drop());
  const server = await new ServerProcess(storage.env).start();
  cleanups.push(() => server.stop('SIGKILL'));
  onTestFailed(() => console.error(`server output:\n${server.logs.slice(-8_000)}`));
  return { browser, storage, server };
}

export interface ExampleServer {
  url: string;
  stop(): Promise<void>;
}

/** Starts examples/report-editor/serve.ts as `npm run example:editor` does, on a free port. */
export function startReportEditorExample(): Promise<ExampleServer> {
  return startExample('report-editor');
}

/** Starts examples/quote-editor/serve.ts as `npm run example:quote` does, on a free port. */
export function startQuoteEditorExample(): Promise<ExampleServer> {
  return startExample('quote-editor');
}

async function startExample(example: string): Promise<ExampleServer> {
  const child = spawn(process.execPath, [`examples/${example}/serve.ts`, '--port', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => process.off('exit', killOnExit));
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the example server did not start:\n${output}`)), 60_000);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /(http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the example server exited with ${code}:\n${output}`));
    });
  });
  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The text of `selector` on the page. */
export async function textOf(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).textContent()) ?? '';
}

/** Waits (up to `timeoutMs`) until the text of `selector` on the page (as `read` reads it) satisfies `check`; returns that text. */
export async function waitForText(page: Page, selector: string, check: (text: string) => boolean, read = textOf, timeoutMs = 15_000): Promise<string> {
  let text = '';
  try {
    await waitFor(selector, async () => check((text = await read(page, selector))), timeoutMs);
  } catch {
    throw new Error(`timed out waiting for the text of ${selector}; it is ${JSON.stringify(text)}`);
  }
  return text;
}
