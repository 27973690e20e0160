import { readFileSync } from 'node:fs';
import { Hono } from 'hono';
import { kinds } from '../documents/kinds.ts';

const pageDirectory = new URL('../history/page/', import.meta.url);
const types: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  json: 'application/json; charset=utf-8',
};
const files = ['index.html', 'admin.css', 'main.js', 'api.js', 'render.js', 'diff.js', 'timeline.js'];

/**
 * The page holds an admin token: nothing but its own files may run or load
 * in it, it may not be framed, and it sends no referrer.
 */
const securityHeaders = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/**
 * Each kind's layout as the page draws a version from it (`kinds.json`): the
 * header's key and fields, the texts, each collection's key, fields and rich
 * text, in layout order. A new kind is drawn without touching the page.
 */
function pageLayouts(): string {
  const outlines = Object.entries(kinds).map(([kind, { layout }]) => [
    kind,
    {
      header: { key: layout.header.key, fields: Object.keys(layout.header.fields) },
      texts: layout.texts,
      collections: Object.entries(layout.collections).map(([key, collection]) => ({ key, fields: Object.keys(collection.fields), richText: collection.richText ?? {} })),
    },
  ]);
  return JSON.stringify(Object.fromEntries(outlines));
}

/**
 * `/admin`: the history page (src/history/page/), plain files served as they
 * are (ES modules, no build step), and `kinds.json`. Read once at start.
 */
export function adminPage(): Hono {
  const contents = new Map(files.map((file) => [file, readFileSync(new URL(file, pageDirectory), 'utf8')]));
  contents.set('kinds.json', pageLayouts());
  const page = new Hono();
  const serve = (file: string) => new Response(contents.get(file), { headers: { 'content-type': types[file.split('.').at(-1)!]!, ...securityHeaders } });
  page.get('/', () => serve('index.html'));
  page.get('/:file', (c) => (contents.has(c.req.param('file')) ? serve(c.req.param('file')) : c.notFound()));
  return page;
}
