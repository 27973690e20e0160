/**
 * Serves the report editor example: index.html, and editor.ts bundled for the
 * browser by esbuild on request (so an edit shows on the next reload; nothing
 * built is kept on disk).
 *
 *   npm start                                   # Concord, in one terminal
 *   node examples/report-editor/serve.ts        # this, in another (--port, --host)
 *   npm run -s token -- --tenant acme --user alice --role editor --name Alice
 *
 * Open the printed URL, paste the token and connect; open it again in a second
 * window with another user's token to see each other's carets.
 */
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import * as esbuild from 'esbuild';

const here = fileURLToPath(new URL('.', import.meta.url));

function portNumber(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('a port number (0 picks a free one)');
  return port;
}

const options = new Command('serve')
  .description('Serve the report editor example page')
  .option('--port <port>', 'port to listen on (0 picks a free one)', portNumber, portNumber(process.env.EXAMPLE_PORT ?? '8790'))
  .option('--host <host>', 'address to bind', process.env.EXAMPLE_HOST ?? '127.0.0.1')
  .parse()
  .opts<{ port: number; host: string }>();

const bundler = await esbuild.context({
  entryPoints: [`${here}editor.ts`],
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
  // Two copies of Yjs in one page break its instanceof checks (the editor
  // would not recognise the provider's types), so refuse to serve that.
  const yjsCopies = new Set(Object.keys(result.metafile!.inputs).flatMap((path) => /(.*node_modules\/yjs)\//.exec(path)?.[1] ?? []));
  if (yjsCopies.size > 1) throw new Error(`the bundle would hold ${yjsCopies.size} copies of yjs (${[...yjsCopies].join(', ')}); run npm dedupe`);
  return result.outputFiles![0]!.text;
}

// Bundle once before listening, so a broken editor.ts stops the start with its error.
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
      response.end(await readFile(`${here}index.html`));
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
  console.log(`Report editor example: http://${options.host}:${port}/`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    server.close();
    server.closeAllConnections();
    await bundler.dispose();
    process.exit(0);
  });
}
