/**
 * Two users edit one quote while one of them is offline, then merge. Alice
 * seeds a header and two lines; Bob goes offline; both change the title, each
 * sets another header field and adds a line, Alice changes a line Bob deletes;
 * Bob comes back. Prints the merged quote (the API's JSON form), its audit rows
 * and its `quotes`/`quote_lines` rows, read from the server's PostgreSQL.
 *
 *   export DATABASE_URL=postgres://...  AUTH_JWT_SECRET=<32+ characters>
 *   npm start                           # in one terminal, with the same settings
 *   ALICE=$(npm run -s token -- --tenant acme --user alice --role editor --name Alice)
 *   BOB=$(npm run -s token -- --tenant acme --user bob --role editor --name Bob)
 *   node examples/offline-merge.ts "$ALICE" "$BOB" [<tenant>/quote/<id>] [--database-url <url>]
 *
 * CONCORD_URL is the server's WebSocket URL (default ws://127.0.0.1:8787); the
 * HTTP API is on the same port. The document must not exist yet (default: a new
 * one per run).
 */
import { isDeepStrictEqual } from 'node:util';
import { HocuspocusProvider } from '@hocuspocus/provider';
import { Command } from 'commander';
import { decodeJwt } from 'jose';
import pg from 'pg';
import * as Y from 'yjs';

const program = new Command('npm run example:merge --')
  .description('Two users edit one new quote, one of them offline, then merge; prints the merged quote, its audit rows and its table rows (the server: CONCORD_URL, default ws://127.0.0.1:8787).')
  .argument('<alice-token>', 'an editor\'s token')
  .argument('<bob-token>', 'another editor\'s token, same tenant')
  .argument('[document]', '<tenant>/quote/<id> that does not exist yet (default: a new one)')
  .option('--database-url <url>', 'the server\'s PostgreSQL, to read the audit rows and tables (default: DATABASE_URL)')
  .parse();
const [aliceToken, bobToken, documentArgument] = program.processedArgs as [string, string, string | undefined];
const databaseUrl = program.opts<{ databaseUrl?: string }>().databaseUrl ?? process.env.DATABASE_URL;
const wsUrl = process.env.CONCORD_URL ?? 'ws://127.0.0.1:8787';
const httpUrl = wsUrl.replace(/^ws/, 'http');
const ALICE_TITLE = 'Office fit-out, 2nd floor';
const BOB_TITLE = 'Office fit-out (revised)';
if (!databaseUrl) {
  // The audit rows and tables are only in Postgres; the embedded PGlite belongs to the server process alone.
  fail(`the audit rows and the quotes row are read from the server's PostgreSQL: pass --database-url or set DATABASE_URL (a server on the embedded PGlite cannot be read from here)`);
}

const alice = describeToken(aliceToken);
const bob = describeToken(bobToken);
if (alice.tenant !== bob.tenant) fail(`the tokens are for two tenants (${alice.tenant}, ${bob.tenant}); both users must be in one`);
const name = documentArgument ?? `${alice.tenant}/quote/merge-${Date.now().toString(36)}`;
const [tenant, kind, id] = name.split('/');
if (kind !== 'quote' || tenant !== alice.tenant) fail(`"${name}" is not a quote of tenant ${alice.tenant} (<tenant>/quote/<id>)`);
// Seeding adds lines l1 and l2: in a quote that has them already there would be two of each.
if ((await getQuote(aliceToken)).status !== 404) fail(`${name} exists already; name a new document or leave it out`);

const a = await open(alice.label, aliceToken);
const b = await open(bob.label, bobToken);

step(`${alice.label} seeds the quote`);
a.doc.transact(() => {
  a.doc.getMap('quote').set('title', 'Office fit-out');
  a.doc.getMap('quote').set('taxPct', 20);
  addLine(a.doc, { id: 'l1', sku: 'CHAIR-01', description: 'Ergonomic chair', quantity: 4, unitPrice: 249.5, discountPct: 0 });
  addLine(a.doc, { id: 'l2', sku: 'DESK-02', description: 'Standing desk', quantity: 2, unitPrice: 499, discountPct: 0 });
});
await acknowledged(a);
await waitFor(`${bob.label} to receive the seed`, () => lineById(b.doc, 'l2'));

step(`${bob.label} goes offline`);
b.provider.disconnect();
// A connect() before the old socket is fully closed is silently lost.
await waitFor(`${bob.label} to be offline`, () => b.provider.configuration.websocketProvider.status === 'disconnected');

step(`${alice.label} edits online: title, customer name, quantity of l1, adds l3`);
a.doc.getMap('quote').set('title', ALICE_TITLE);
a.doc.getMap('quote').set('customerName', 'ACME GmbH');
lineById(a.doc, 'l1')!.set('quantity', 6);
addLine(a.doc, { id: 'l3', sku: 'LAMP-07', description: 'Desk lamp', quantity: 6, unitPrice: 39.9, discountPct: 0 });
await acknowledged(a);

step(`${bob.label} edits offline: title, currency, deletes l1, adds l4`);
b.doc.getMap('quote').set('title', BOB_TITLE);
b.doc.getMap('quote').set('currency', 'EUR');
b.doc.getArray('lines').delete(b.doc.getArray('lines').toArray().indexOf(lineById(b.doc, 'l1')!), 1);
addLine(b.doc, { id: 'l4', sku: 'PLANT-3', description: 'Office plant', quantity: 3, unitPrice: 24.95, discountPct: 10 });
console.log(`  ${bob.label} holds ${b.provider.unsyncedChanges} unacknowledged change(s)`);

step(`${bob.label} reconnects`);
await b.provider.connect();
await acknowledged(b);
await acknowledged(a);
await waitFor('both replicas to converge', () => isDeepStrictEqual(a.doc.toJSON(), b.doc.toJSON()));
a.provider.destroy();
b.provider.destroy();
// Of two concurrent values of one key Yjs keeps one, the same on every replica, chosen by client id rather than time.
// The other changed nothing on the server: it is in the log, but has no audit row.
const kept = a.doc.getMap('quote').get('title') === BOB_TITLE ? bob.label : alice.label;
console.log(`  converged: both set the title, ${kept}'s was kept; l1 is gone, with the quantity ${alice.label} gave it`);

const merged = await getQuote(aliceToken);
if (merged.status !== 200) fail(`GET /api/documents/quote/${id} answered ${merged.status}: ${JSON.stringify(merged.body)}`);
console.log(`\nThe merged quote (GET /api/documents/quote/${id}):`);
console.log(JSON.stringify(merged.body, null, 2));

const db = new pg.Client({ connectionString: databaseUrl });
await db.connect();
try {
  // As the server reads: the runtime role with the tenant set, so row-level security applies.
  await db.query('BEGIN');
  await db.query("SELECT set_config('role', 'concord_app', true), set_config('app.tenant_id', $1, true)", [tenant]);
  const audit = await db.query(
    `SELECT seq::int, user_id, entity, entity_id, field, action, old_value, new_value
       FROM field_changes WHERE name = $1 ORDER BY seq, id`,
    [name],
  );
  console.log(`\nIts audit rows (field_changes):`);
  printTable(audit.rows.map((row) => ({ ...row, old_value: brief(row.old_value), new_value: brief(row.new_value) })));
  const quote = await db.query(
    `SELECT id, title, customer_name, currency, tax_pct, line_count, subtotal, total, version::int, updated_by FROM quotes WHERE id = $1`,
    [id],
  );
  console.log(`\nIts quotes row:`);
  printTable(quote.rows);
  const lines = await db.query(
    `SELECT id, position, sku, quantity, unit_price, discount_pct, line_total, updated_by FROM quote_lines WHERE quote_id = $1 ORDER BY position`,
    [id],
  );
  console.log(`\nIts quote_lines rows:`);
  printTable(lines.rows);
  await db.query('COMMIT');
} finally {
  await db.end();
}

interface Client {
  provider: HocuspocusProvider;
  doc: Y.Doc;
}

async function open(label: string, token: string): Promise<Client> {
  const doc = new Y.Doc();
  const provider = new HocuspocusProvider({
    url: wsUrl,
    name,
    token,
    document: doc,
    onAuthenticationFailed: ({ reason }) => fail(`${label}: refused: ${reason}`),
    onClose: ({ event }) => event.reason && console.error(`  ${label}: closed: ${event.reason}`),
  });
  await waitFor(`${label} to sync`, () => provider.isSynced);
  console.log(`${label} connected to ${name}`);
  return { provider, doc };
}

/** A line as a client adds one: a Y.Map appended to `lines`. */
function addLine(doc: Y.Doc, fields: Record<string, unknown>): void {
  const line = new Y.Map<unknown>();
  doc.transact(() => {
    doc.getArray('lines').push([line]);
    for (const [key, value] of Object.entries(fields)) line.set(key, value);
  });
}

function lineById(doc: Y.Doc, lineId: string): Y.Map<unknown> | undefined {
  return doc.getArray('lines').toArray().find((line): line is Y.Map<unknown> => line instanceof Y.Map && line.get('id') === lineId);
}

/** unsyncedChanges falls back to 0 only once the server has committed every change, with its audit rows and table rows. */
function acknowledged(client: Client): Promise<unknown> {
  return waitFor('acknowledgement', () => client.provider.isSynced && client.provider.unsyncedChanges === 0);
}

async function waitFor<T>(what: string, check: () => T, timeoutMs = 15_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() - started > timeoutMs) fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function getQuote(token: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${httpUrl}/api/documents/quote/${id}`, { headers: { authorization: `Bearer ${token}` } }).catch((error: Error) =>
    fail(`cannot reach ${httpUrl}: ${error.message} (is the server running? CONCORD_URL says where)`),
  );
  return { status: response.status, body: await response.json() };
}

/** Who a token names, for the printout and for early, clear errors (the server verifies it). */
function describeToken(token: string): { tenant: string; label: string } {
  let claims: Record<string, unknown>;
  try {
    claims = decodeJwt(token);
  } catch {
    return fail(`not a JWT: ${token.slice(0, 20)}...`);
  }
  const label = `${claims.name ?? claims.sub} (${claims.sub})`;
  if (claims.role !== 'editor' && claims.role !== 'admin') fail(`${label} needs an editor or admin token, not ${String(claims.role ?? 'viewer')}`);
  return { tenant: String(claims.tenant), label };
}

function step(text: string): void {
  console.log(`\n- ${text}`);
}

function brief(value: unknown): string {
  const text = JSON.stringify(value) ?? '';
  return text.length > 50 ? `${text.slice(0, 47)}...` : text;
}

function printTable(rows: Array<Record<string, unknown>>): void {
  if (rows.length === 0) return console.log('  (none)');
  const columns = Object.keys(rows[0]!);
  const cells = rows.map((row) => columns.map((column) => String(row[column] ?? '')));
  const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((row) => row[i]!.length)));
  for (const row of [columns, ...cells]) console.log(`  ${row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')}`.trimEnd());
}

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}
