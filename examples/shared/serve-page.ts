/**
 * Serves one example editor page: its index.html, and its editor.ts bundled
 * for the browser by esbuild, once at start (a broken editor.ts stops the
 * start with its error) and again on each request (so an edit shows on the
 * next reload; nothing built is kept on disk). Each example's serve.ts is a
 * call to servePage.
 */
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import * as esbuild from 'esbuild';

export interface PageOptions {
  /** What the page is, for --help and the start line ("Report editor example"). */
  title: string;
  /** The example's directory, with index.html and editor.ts (a file URL or path ending in /). */
  directory: string;
  /** The port used when neither --port nor EXAMPLE_PORT is given. */
  defaultPort: number;
}

function portNumber(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('a port number (0 picks a free one)');
  return port;
}

export async function servePage({ title, directory, defaultPort }: PageOptions): Promise<void> {
  const options = new Command('serve')
    .description(`Serve the ${title.toLowerCase()} page`)
    .option('--port <port>', 'port to listen on (0 picks a free one)', portNumber, portNumber(process.env.EXAMPLE_PORT ?? String(defaultPort)))
    .option('--host <host>', 'address to bind', process.env.EXAMPLE_HOST ?? '127.0.0.1')
    .parse()
    .opts<{ port: number; host: string }>();

  const bundler = await esbuild.context({
    entryPoints: [`${directory}editor.ts`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: 'inline',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });

  /** Bundles editor.ts; throws if that fails or if the bundle would hold two copies of Yjs. */
  async function bundle(): Promise<string> {
    const result = await bundler.rebuild();
    // Two copies of Yjs in one page break its instanceof checks (an editor
    // would not recognise the provider's types), so refuse to serve that.
    const yjsCopies = new Set(Object.keys(result.metafile!.inputs).flatMap((path) => /(.*node_modules\/yjs)\//.exec(path)?.[1] ?? []));
    if (yjsCopies.size > 1) throw new Error(`the bundle would hold ${yjsCopies.size} copies of yjs (${[...yjsCopies].join(', ')}); run npm dedupe`);
    return result.outputFiles![0]!.text;
  }

  try {
    await bundle();
  } catch (error) {
    console.error(`serve: ${(error as Error).message}`);
    await bundler.dispose();
    process.exit(1);
  }

  const server = createServer(async (request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    try {
      if (path === '/' || path === '/index.html') {
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        response.end(await readFile(`${directory}index.html`));
      } else if (path === '/editor.js') {
        const code = await bundle();
        response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
        response.end(code);
      } else {
        response.writeHead(404, { 'content-type': 'text/plain' });
        response.end('not found\n');
      }
    } catch (error) {
      console.error(`serve: ${request.url}: ${(error as Error).message}`);
      response.writeHead(500, { 'content-type': 'text/plain' });
      response.end(`${(error as Error).message}\n`);
    }
  });

  server.listen(options.port, options.host, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : options.port;
    console.log(`${title}: http://${options.host}:${port}/`);
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, async () => {
      server.close();
      server.closeAllConnections();
      await bundler.dispose();
      process.exit(0);
    });
  }
}
