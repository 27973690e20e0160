import type { Context } from 'hono';

/** Plain HTML, no script or style of its own to trust. */
const securityHeaders = {
  'content-security-policy': "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);

/**
 * `GET /`: what this server is and how to connect to it, for whoever opens
 * its address in a browser. The WebSocket address is this page's own.
 */
export function landingPage(c: Context): Response {
  const page = new URL(c.req.url);
  const socketUrl = escapeHtml(`${page.protocol === 'https:' ? 'wss' : 'ws'}://${page.host}`);
  const html = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Concord</title><meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<h1>Concord</h1>
<p>A collaboration server for business documents (quotes, reports, invoices): Yjs documents served by Hocuspocus,
every acknowledged edit committed to Postgres with its field-level audit rows.</p>

<h2>Connect</h2>
<p>WebSocket: <code>${socketUrl}</code>, with a Hocuspocus provider. Documents are named
<code>&lt;tenant&gt;/&lt;kind&gt;/&lt;id&gt;</code>, such as <code>acme/quote/q-1001</code>.</p>
<pre>new HocuspocusProvider({ url: '${socketUrl}', name: 'acme/quote/q-1001', token })</pre>
<p>Every connection needs a token (a JWT naming the user, the tenant and the role). With the development secret, on the
server's machine and with its <code>DATA_DIR</code>:</p>
<pre>TOKEN=$(npm run -s token -- --tenant acme --user alice --role editor)</pre>
<p>The HTTP API takes the same token as <code>Authorization: Bearer</code>: <code>GET /api/documents/quote/q-1001</code>.</p>

<h2>Pages</h2>
<ul>
<li><a href="/admin">/admin</a>: a document's history, versions and restore (an <code>admin</code> token)</li>
<li>Editors in your browser, served beside this server from a checkout: <code>npm run example:quote</code> (a whole quote) and
<code>npm run example:editor</code> (a project report)</li>
<li><a href="/healthz">/healthz</a>: the process is up; <a href="/readyz">/readyz</a>: its database (and Redis) answer</li>
</ul>
</body>
</html>
`;
  return c.html(html, 200, securityHeaders);
}
