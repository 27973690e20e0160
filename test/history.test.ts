import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { appendUpdates } from '../src/db/updates.ts';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { renderDocument } from '../src/documents/service.ts';
import { applyTailToCompact } from '../src/persistence/compact.ts';
import { PostgresStorage } from '../src/storage/postgres.ts';
import { runCli } from './support/cli.ts';
import { acknowledged, connect, goOffline, waitFor, type Client } from './support/clients.ts';
import { addLine, api, lineById, typeInto } from './support/documents.ts';
import { fieldChanges, loggedUpdates, rowsOf } from './support/inspect.ts';
import { sharedServer } from './support/shared-server.ts';
import { token } from './support/tokens.ts';

const CHECKPOINT_EVERY = 4;
// AUDIT_TEXT_BURST_MS: long enough that a loaded machine never splits one burst of typing.
const shared = sharedServer({ CHECKPOINT_EVERY: String(CHECKPOINT_EVERY), AUDIT_TEXT_BURST_MS: '60000' });
const { open } = shared;

const adminToken = () => token({ sub: 'ada', role: 'admin' });
const get = async (path: string, bearer?: string) => api(shared.server.httpUrl, bearer ?? (await adminToken()), 'GET', path);

/** The JSON form of what a client holds right now. */
function jsonOf(client: Client, name: string) {
  return renderDocument(parseDocumentName(name), client.doc);
}

/** How many version reads the server rebuilt from `from` so far (`concord_version_read_seconds`). */
async function readsFrom(from: 'replica' | 'compact' | 'log'): Promise<number> {
  return (await shared.server.metrics()).get(`concord_version_read_seconds_count{from="${from}"}`) ?? 0;
}

/** The document's version as the API reports it. */
async function latest(kindAndId: string): Promise<number> {
  return (await get(`/api/documents/${kindAndId}`)).body.version;
}

describe('history API', () => {
  it('history, changes and versions: every version equals what the editor held right after it; paging, filters and times work', async () => {
    const name = 'acme/quote/hist';
    const alice = await open(name, 'alice');
    const bob = await open(name, 'bob');
    // Each step is one update, acknowledged (so committed) before the next: its seq is known.
    const recorded: Array<{ seq: number; json: unknown; at: Date; user: string }> = [];
    const step = async (client: Client, user: string, edit: () => void) => {
      edit();
      await acknowledged(client);
      recorded.push({ seq: recorded.length + 1, json: jsonOf(client, name), at: new Date(), user });
      await waitFor('both replicas agree', () => isDeepStrictEqual(jsonOf(alice, name), jsonOf(bob, name)));
      await new Promise((resolve) => setTimeout(resolve, 5));
    };
    await step(alice, 'alice', () => alice.doc.getMap('quote').set('title', 'Pumps'));
    await step(alice, 'alice', () => addLine(alice.doc, { id: 'l1', sku: 'P-1', quantity: 2, unitPrice: 10 }));
    await step(bob, 'bob', () => addLine(bob.doc, { id: 'l2', sku: 'P-2', quantity: 1, unitPrice: 0.335 }));
    await step(bob, 'bob', () => lineById(bob.doc, 'l1')!.set('quantity', 3));
    await step(alice, 'alice', () => alice.doc.getMap('quote').set('discountPct', 10));
    await step(alice, 'alice', () => alice.doc.getText('notes').insert(0, 'Deliver in May'));
    await step(bob, 'bob', () => bob.doc.getArray('lines').delete(0, 1));
    await step(alice, 'alice', () => alice.doc.getMap('quote').set('title', 'Pumps and valves'));
    expect(await latest('quote/hist')).toBe(recorded.length);

    for (const { seq, json, user } of recorded) {
      const { status, body } = await get(`/api/documents/quote/hist/versions/${seq}`);
      expect(status).toBe(200);
      expect(body).toMatchObject({ name, version: seq, latest: recorded.length, exactFrom: 0, userId: user, origin: 'client' });
      expect(body.content).toEqual(json);
    }
    const empty = await get('/api/documents/quote/hist/versions/0');
    expect(empty.body).toMatchObject({ version: 0, userId: null, content: { quote: { title: null, status: 'draft' }, lines: [], notes: '' } });

    // Versions by time: the last update received at or before the moment.
    for (const { seq, at } of recorded) {
      const { body } = await get(`/api/documents/quote/hist/versions?at=${encodeURIComponent(at.toISOString())}`);
      expect(body.version).toBe(seq);
    }
    expect((await get(`/api/documents/quote/hist/versions?at=2000-01-01T00:00:00Z`)).body.version).toBe(0);

    // History, two at a time: the cursor walks every update once, in order, with author and fields.
    const pages = [];
    let after = 0;
    for (;;) {
      const { status, body } = await get(`/api/documents/quote/hist/history?limit=2&after=${after}`);
      expect(status).toBe(200);
      pages.push(...body.updates);
      if (body.next === null) break;
      after = body.next;
    }
    expect(pages.map((update) => update.seq)).toEqual(recorded.map(({ seq }) => seq));
    expect(pages.map((update) => update.userId)).toEqual(recorded.map(({ user }) => user));
    expect(pages.every((update) => update.origin === 'client' && update.bytes > 0)).toBe(true);
    expect(pages[0].fields).toEqual([{ entity: 'quote', entityId: 'hist', field: 'title' }]);
    expect(pages[3].fields).toEqual([{ entity: 'quote_line', entityId: 'l1', field: 'quantity' }]);
    expect(pages[6].fields).toEqual([{ entity: 'quote_line', entityId: 'l1', field: '*' }]);

    // Audit rows with filters, and paged.
    const titles = await get('/api/documents/quote/hist/changes?entity=quote&field=title');
    expect(titles.body.changes.map((change: any) => [change.oldValue, change.newValue, change.userId])).toEqual([
      [null, 'Pumps', 'alice'],
      ['Pumps', 'Pumps and valves', 'alice'],
    ]);
    const bobs = await get('/api/documents/quote/hist/changes?user=bob');
    expect(bobs.body.changes.map((change: any) => `${change.action} ${change.entityId}.${change.field}`)).toEqual(['create l2.*', 'update l1.quantity', 'delete l1.*']);
    const range = await get('/api/documents/quote/hist/changes?fromSeq=4&toSeq=5');
    expect(range.body.changes.map((change: any) => change.seq)).toEqual([4, 5]);
    const since = recorded[5]!.at.toISOString();
    const late = await get(`/api/documents/quote/hist/changes?since=${encodeURIComponent(since)}`);
    expect(late.body.changes.map((change: any) => change.seq)).toEqual([7, 8]);
    const firstTwo = await get('/api/documents/quote/hist/changes?limit=2');
    const rest = await get(`/api/documents/quote/hist/changes?after=${firstTwo.body.next}`);
    expect([...firstTwo.body.changes, ...rest.body.changes].map((change: any) => change.id)).toEqual(
      (await get('/api/documents/quote/hist/changes')).body.changes.map((change: any) => change.id),
    );
    expect(rest.body.next).toBeNull();

    // The tenant's documents, for picking one.
    const listed = await get('/api/documents?limit=1000');
    expect(listed.body.documents).toContainEqual(expect.objectContaining({ name, kind: 'quote', id: 'hist', version: recorded.length }));
  });

  it('inside a burst of typing, each update lists exactly the fields it changed (an edit of another field between keystrokes is not typing)', async () => {
    const name = 'acme/quote/burst-fields';
    const alice = await open(name, 'alice');
    const bob = await open(name, 'bob');
    const notes = alice.doc.getText('notes');
    // One step, one update, acknowledged before the next: update n is seq n.
    const step = async (client: Client, edit: () => void) => {
      edit();
      await acknowledged(client);
    };
    await step(alice, () => notes.insert(0, 'A'));
    await step(alice, () => notes.insert(1, 'B'));
    await step(alice, () => alice.doc.getMap('quote').set('customerName', 'Acme Pumps'));
    await step(alice, () => notes.insert(2, 'C'));
    await waitFor('bob has alice\'s notes', () => bob.doc.getText('notes').toString() === 'ABC');
    await step(bob, () => bob.doc.getMap('quote').set('title', 'By bob'));
    await step(alice, () => notes.insert(3, 'D'));
    await step(alice, () => alice.doc.getMap('quote').set('customerName', 'Acme Pumps Ltd'));
    await step(alice, () => notes.insert(4, 'E'));

    // Alice's typing is one burst (one row from her first key to her last)...
    const audit = await fieldChanges(shared.db, 'acme', name);
    expect(audit.filter((change) => change.field === 'notes').map((change) => [change.first_seq, change.seq, change.new_value])).toEqual([[1, 8, 'ABCDE']]);
    // ...yet only the updates that typed are listed with notes.
    const notesField = { entity: 'quote', entityId: 'burst-fields', field: 'notes' };
    const customer = { entity: 'quote', entityId: 'burst-fields', field: 'customerName' };
    const { body } = await get('/api/documents/quote/burst-fields/history');
    expect(body.updates.map((update: any) => [update.seq, update.userId, update.fields])).toEqual([
      [1, 'alice', [notesField]],
      [2, 'alice', [notesField]],
      [3, 'alice', [customer]],
      [4, 'alice', [notesField]],
      [5, 'bob', [{ entity: 'quote', entityId: 'burst-fields', field: 'title' }]],
      [6, 'alice', [notesField]],
      [7, 'alice', [customer]],
      [8, 'alice', [notesField]],
    ]);
    // The same holds for the rows covering a range of updates.
    const covering = async (from: number, to: number) =>
      (await get(`/api/documents/quote/burst-fields/changes?fromSeq=${from}&toSeq=${to}`)).body.changes.map((change: any) => change.field);
    expect(await covering(3, 3)).toEqual(['customerName']);
    expect(await covering(5, 5)).toEqual(['title']);
    expect(await covering(7, 7)).toEqual(['customerName']);
    expect(await covering(3, 4)).toEqual(['notes', 'customerName']);
  });

  it('refuses what it must: non-admins 403, unknown documents and versions 404, bad parameters 400', async () => {
    const name = 'acme/quote/guarded';
    const erin = await open(name, 'erin');
    erin.doc.getMap('quote').set('title', 'Guarded');
    await acknowledged(erin);
    for (const role of ['viewer', 'commenter', 'editor']) {
      const bearer = await token({ sub: 'erin', role });
      for (const path of ['/history', '/changes', '/versions/1', '/versions?at=2026-01-01T00:00:00Z']) {
        const { status, body } = await get(`/api/documents/quote/guarded${path}`, bearer);
        expect({ role, path, status, code: body.error.code }).toEqual({ role, path, status: 403, code: 'not-allowed' });
      }
      expect((await api(shared.server.httpUrl, bearer, 'POST', '/api/documents/quote/guarded/restore', { version: 1 })).status).toBe(403);
      expect((await get('/api/documents', bearer)).status).toBe(403);
    }
    // An admin of another tenant addresses its own tenant's documents: there is no such one.
    const other = await token({ tenant: 'globex', sub: 'gil', role: 'admin' });
    expect((await get('/api/documents/quote/guarded/versions/1', other)).body.error.code).toBe('not-found');
    // A token limited to other documents reaches neither this one nor the listing of others.
    const limited = await token({ sub: 'ada', role: 'admin', docs: ['quote/other'] });
    expect((await get('/api/documents/quote/guarded/history', limited)).body.error.code).toBe('not-allowed');
    expect((await get('/api/documents', limited)).body.documents).toEqual([]);

    const expectations: Array<[string, number, string]> = [
      ['/api/documents/quote/nowhere/history', 404, 'not-found'],
      ['/api/documents/quote/nowhere/versions/0', 404, 'not-found'],
      ['/api/documents/quote/guarded/versions/2', 404, 'not-found'],
      ['/api/documents/quote/guarded/versions/-1', 400, 'bad-request'],
      ['/api/documents/quote/guarded/versions/1e0', 400, 'bad-request'],
      ['/api/documents/quote/guarded/versions/abc', 400, 'bad-request'],
      ['/api/documents/quote/guarded/versions', 400, 'bad-request'],
      ['/api/documents/quote/guarded/versions?at=yesterday', 400, 'bad-request'],
      ['/api/documents/quote/guarded/history?limit=0', 400, 'bad-request'],
      ['/api/documents/quote/guarded/history?limit=1001', 400, 'bad-request'],
      ['/api/documents/quote/guarded/history?after=x', 400, 'bad-request'],
      ['/api/documents/quote/guarded/history?page=2', 400, 'bad-request'],
      ['/api/documents/quote/guarded/changes?since=monday', 400, 'bad-request'],
      ['/api/documents/no-such-kind/guarded/history', 400, 'unknown-kind'],
    ];
    for (const [path, status, code] of expectations) {
      const { status: got, body } = await get(path);
      expect({ path, status: got, code: body.error?.code }).toEqual({ path, status, code });
    }
    for (const body of [{}, { version: -1 }, { version: 1.5 }, { version: '1' }, { version: 1, extra: true }, 'not json']) {
      const { status, body: answer } = await api(shared.server.httpUrl, await adminToken(), 'POST', '/api/documents/quote/guarded/restore', body);
      expect({ body, status, code: answer.error.code }).toEqual({ body, status: 400, code: 'bad-request' });
    }
    expect((await api(shared.server.httpUrl, await adminToken(), 'POST', '/api/documents/quote/guarded/restore', { version: 9 })).status).toBe(404);
    expect(await latest('quote/guarded')).toBe(1);
  });

  it('a version whose tail places a value after one its compact checkpoint left out (an offline client merging back) is read from the exact state', async () => {
    const name = 'acme/quote/merged';
    const document = parseDocumentName(name);
    const customer = (doc: Y.Doc) => doc.getMap('quote').get('customerName');
    // Of two values placed after the same one, the higher client ID's wins.
    const aliceDoc = new Y.Doc();
    aliceDoc.clientID = 1_000;
    const carolDoc = new Y.Doc();
    carolDoc.clientID = 2_000_000_000;
    const alice = connect(shared.server.wsUrl, name, await token({ sub: 'alice' }), aliceDoc);
    let carol = connect(shared.server.wsUrl, name, await token({ sub: 'carol' }), carolDoc);
    try {
      aliceDoc.getMap('quote').set('customerName', 'Acme');
      await acknowledged(alice);
      await waitFor('carol holds Acme', () => customer(carolDoc) === 'Acme');
      await goOffline(carol);
      aliceDoc.getMap('quote').set('customerName', 'Globex');
      for (let edit = 0; edit < CHECKPOINT_EVERY; edit++) aliceDoc.getMap('quote').set('title', `Pumps ${edit}`);
      await acknowledged(alice);
      const overwrittenAt = 2;
      const checkpointed = async () => (await rowsOf<{ seq: string }>(shared.db, 'acme', 'SELECT max(seq) AS seq FROM document_checkpoints WHERE name = $1', [name]))[0]?.seq;
      await waitFor('a checkpoint after "Globex"', async () => Number(await checkpointed()) >= overwrittenAt);

      carolDoc.getMap('quote').set('customerName', 'Initech');
      carol.provider.destroy();
      carol = connect(shared.server.wsUrl, name, await token({ sub: 'carol' }), carolDoc);
      await acknowledged(carol);
      await waitFor('alice merges', () => customer(aliceDoc) === 'Initech');
      const merged = await latest('quote/merged');

      // Applied to the compact checkpoint as it is, the merge would lose carol's value; the check sees that.
      const compact = (await new PostgresStorage(shared.db).loadCompact(document, merged))!;
      expect(compact.checkpoint!.seq).toBeGreaterThanOrEqual(overwrittenAt);
      const tail = compact.tail.map(({ update }) => update);
      const blind = new Y.Doc();
      for (const update of [compact.checkpoint!.compact, ...tail]) Y.applyUpdate(blind, update);
      expect(customer(blind)).not.toBe('Initech');
      const checked = new Y.Doc();
      Y.applyUpdate(checked, compact.checkpoint!.compact);
      expect(applyTailToCompact(checked, tail)).toBe(false);

      const independent = new Y.Doc();
      for (const row of await loggedUpdates(shared.db, 'acme', name)) Y.applyUpdate(independent, row.update);
      const exactReads = await readsFrom('log');
      const { body } = await get(`/api/documents/quote/merged/versions/${merged}`);
      expect(await readsFrom('log')).toBe(exactReads + 1);
      expect(body.content.quote.customerName).toBe('Initech');
      expect(body.content).toEqual(renderDocument(document, independent));
    } finally {
      alice.provider.destroy();
      carol.provider.destroy();
    }
  });

  it('a long log without checkpoints (written directly) gets them up to the first version read; every version stays exact', async () => {
    const name = 'acme/quote/imported';
    const document = parseDocumentName(name);
    const source = new Y.Doc();
    const updates: Uint8Array[] = [];
    source.on('update', (update: Uint8Array) => updates.push(update));
    source.getMap('quote').set('title', 'Imported');
    for (let index = 0; index < 60; index++) {
      if (index % 10 === 0) addLine(source, { id: `l${index}`, quantity: index, unitPrice: 1 });
      else lineById(source, `l${index - (index % 10)}`)!.set('quantity', index);
    }
    await shared.db.transaction('acme', (sql) =>
      appendUpdates(sql, updates.map((update) => ({ document, update, userId: 'importer', origin: 'client' as const, receivedAt: new Date() }))),
    );
    const checkpoints = () => rowsOf<{ seq: number }>(shared.db, 'acme', 'SELECT seq FROM document_checkpoints WHERE name = $1 ORDER BY seq', [name]).then((rows) => rows.map((row) => Number(row.seq)));
    expect(await checkpoints()).toEqual([]);

    const seq = updates.length - 3;
    const compactReads = await readsFrom('compact');
    const { body } = await get(`/api/documents/quote/imported/versions/${seq}`);
    expect(await readsFrom('compact')).toBe(compactReads + 1);
    // The first read (from the log: no replica yet) wrote a checkpoint at every multiple of CHECKPOINT_EVERY up to it.
    const multiples = Array.from({ length: Math.floor(seq / CHECKPOINT_EVERY) }, (_, index) => (index + 1) * CHECKPOINT_EVERY);
    expect(multiples.length).toBeGreaterThan(1);
    expect(await checkpoints()).toEqual(multiples);
    const logged = await loggedUpdates(shared.db, 'acme', name);
    for (const at of [1, 7, 8, seq, updates.length]) {
      const independent = new Y.Doc();
      for (const row of logged.filter((row) => row.seq <= at)) Y.applyUpdate(independent, row.update);
      const version = at === seq ? body : (await get(`/api/documents/quote/imported/versions/${at}`)).body;
      expect(version.content).toEqual(renderDocument(document, independent));
    }
  });
});

// On the embedded database the CLI asks the running server's API (the database is the server's alone).
describe('npm run replay beside a running server', () => {
  it('prints a version in its JSON form, by seq or by time, exactly as the API answers; bad arguments exit 1 with a reason', async () => {
    const name = 'acme/quote/replayed';
    const rosa = await open(name, 'rosa');
    rosa.doc.getMap('quote').set('title', 'First');
    await acknowledged(rosa);
    const between = new Date();
    await new Promise((resolve) => setTimeout(resolve, 5));
    addLine(rosa.doc, { id: 'l1', quantity: 3, unitPrice: 0.335 });
    await acknowledged(rosa);

    const env = shared.server.env;
    for (const [args, seq] of [[['--version', '1'], 1], [['--version', '2'], 2], [['--at', between.toISOString()], 1]] as const) {
      const printed = await runCli('replay', [name, ...args], env);
      expect({ args, code: printed.code, stderr: printed.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(JSON.parse(printed.stdout)).toEqual((await get(`/api/documents/quote/replayed/versions/${seq}`)).body);
    }
    expect(JSON.parse((await runCli('replay', [name, '--version', '2'], env)).stdout).content.totals).toEqual({ subtotal: 1.01, total: 1.01 });

    const refusals: Array<[string[], RegExp]> = [
      [[name], /--version <seq> or --at <time>/],
      [[name, '--version', '3'], /not-found: .*has no version 3; its latest is 2/],
      [[name, '--version', 'two'], /a whole number/],
      [[name, '--at', 'tuesday'], /an ISO time/],
      [[name, '--version', '1', '--at', between.toISOString()], /cannot be used with/],
      [['acme/no-such-kind/x', '--version', '1'], /unknown-kind|not a document kind/],
      [['acme/quote/never-opened', '--version', '0'], /not-found/],
    ];
    for (const [args, reason] of refusals) {
      const refused = await runCli('replay', args, env);
      expect({ args, code: refused.code }).toEqual({ args, code: 1 });
      expect(refused.stderr).toMatch(reason);
    }
  });
});

describe('restore', () => {
  it('makes the live quote equal an old version with one update by the admin; connected clients converge; audit and tables show it; a restore can be restored', async () => {
    const name = 'acme/quote/restored';
    const alice = await open(name, 'alice');
    const bob = await open(name, 'bob');
    alice.doc.transact(() => {
      alice.doc.getMap('quote').set('title', 'Original');
      alice.doc.getMap('quote').set('taxPct', 20);
      addLine(alice.doc, { id: 'a', sku: 'A', quantity: 1, unitPrice: 10 });
      addLine(alice.doc, { id: 'b', sku: 'B', quantity: 2, unitPrice: 2.5 });
      addLine(alice.doc, { id: 'c', sku: 'C', quantity: 3, unitPrice: 1 });
    });
    typeInto(alice.doc.getText('notes'), 0, 'Call first');
    await acknowledged(alice);
    const original = await latest('quote/restored');
    const originalJson = jsonOf(alice, name);

    // Later: a new title, line a removed, line c changed and moved first, a new line, notes rewritten.
    await waitFor('bob has the original', () => isDeepStrictEqual(jsonOf(bob, name), originalJson));
    bob.doc.transact(() => {
      bob.doc.getMap('quote').set('title', 'Changed');
      bob.doc.getMap('quote').delete('taxPct');
      const lines = bob.doc.getArray<Y.Map<unknown>>('lines');
      lines.delete(0, 1);
      lines.delete(1, 1);
      addLine(bob.doc, { id: 'c', sku: 'C', quantity: 30, unitPrice: 1 }, 0);
      addLine(bob.doc, { id: 'd', sku: 'D', quantity: 1, unitPrice: 99 });
      const notes = bob.doc.getText('notes');
      notes.delete(0, notes.length);
      notes.insert(0, 'Do not call');
    });
    await acknowledged(bob);
    const before = await latest('quote/restored');

    const restored = await api(shared.server.httpUrl, await adminToken(), 'POST', '/api/documents/quote/restored/restore', { version: original });
    expect(restored.status).toBe(200);
    expect(restored.body).toMatchObject({ name, version: before + 1, restoredFrom: original });
    expect(restored.body.content).toEqual(originalJson);
    for (const client of [alice, bob]) await waitFor('the clients converge on the restored version', () => isDeepStrictEqual(jsonOf(client, name), originalJson));
    expect((await get(`/api/documents/quote/restored/versions/${before + 1}`)).body.content).toEqual(originalJson);

    // One forward update, by the admin, audited field by field.
    const logged = await loggedUpdates(shared.db, 'acme', name);
    expect(logged.at(-1)).toMatchObject({ seq: before + 1, user_id: 'ada', origin: 'restore' });
    const audit = (await fieldChanges(shared.db, 'acme', name)).filter((change) => change.seq === before + 1);
    expect(audit.every((change) => change.user_id === 'ada')).toBe(true);
    const described = audit.map((change) => `${change.action} ${change.entity}:${change.entity_id}.${change.field}`);
    expect(described).toEqual(
      expect.arrayContaining(['update quote:restored.title', 'update quote:restored.taxPct', 'update quote:restored.notes', 'create quote_line:a.*', 'delete quote_line:d.*']),
    );
    expect(audit.find((change) => change.field === 'title')).toMatchObject({ old_value: 'Changed', new_value: 'Original' });
    // The tables: the header row and the lines as they were, at the new version, by the admin.
    const [row] = await rowsOf<Record<string, any>>(shared.db, 'acme', 'SELECT * FROM quotes WHERE id = $1', ['restored']);
    expect(row).toMatchObject({ title: 'Original', tax_pct: '20', notes: 'Call first', line_count: 3, subtotal: '18.00', total: '21.60', version: before + 1, updated_by: 'ada' });
    const lines = await rowsOf<Record<string, any>>(shared.db, 'acme', 'SELECT id, position, quantity FROM quote_lines WHERE quote_id = $1 ORDER BY position', ['restored']);
    expect(lines).toEqual([
      { id: 'a', position: 0, quantity: '1' },
      { id: 'b', position: 1, quantity: '2' },
      { id: 'c', position: 2, quantity: '3' },
    ]);

    // Nothing earlier became unreachable: the version before the restore is still there, and restoring it undoes the restore.
    const undone = await api(shared.server.httpUrl, await adminToken(), 'POST', '/api/documents/quote/restored/restore', { version: before });
    expect(undone.body.version).toBe(before + 2);
    const changedJson = (await get(`/api/documents/quote/restored/versions/${before}`)).body.content;
    expect(undone.body.content).toEqual(changedJson);
    // And restoring the restore brings the original back once more.
    const again = await api(shared.server.httpUrl, await adminToken(), 'POST', '/api/documents/quote/restored/restore', { version: before + 1 });
    expect(again.body).toMatchObject({ version: before + 3, content: originalJson });
    for (const client of [alice, bob]) await waitFor('the clients converge again', () => isDeepStrictEqual(jsonOf(client, name), originalJson));

    // Restoring what the document already is changes nothing and logs nothing.
    const same = await api(shared.server.httpUrl, await adminToken(), 'POST', '/api/documents/quote/restored/restore', { version: before + 3 });
    expect(same.body.version).toBe(before + 3);
    expect(await latest('quote/restored')).toBe(before + 3);
  });

  it('restores a report section body in place: an editor bound to the fragment keeps it and sees the old text', async () => {
    const name = 'acme/report/restored';
    const rita = await open(name, 'rita');
    rita.doc.transact(() => {
      rita.doc.getMap('report').set('title', 'April');
      const section = new Y.Map<unknown>([['id', 's1'], ['title', 'Findings'], ['body', new Y.XmlFragment()]]);
      rita.doc.getArray('sections').push([section]);
      const paragraph = new Y.XmlElement('paragraph');
      paragraph.insert(0, [new Y.XmlText('All green')]);
      (section.get('body') as Y.XmlFragment).insert(0, [paragraph]);
    });
    await acknowledged(rita);
    const original = await latest('report/restored');
    const originalJson = jsonOf(rita, name);
    const body = (rita.doc.getArray<Y.Map<unknown>>('sections').get(0).get('body')) as Y.XmlFragment;
    const text = (body.get(0) as Y.XmlElement).get(0) as Y.XmlText;
    text.delete(0, text.length);
    text.insert(0, 'Two servers down');
    const heading = new Y.XmlElement('heading');
    heading.setAttribute('level', 2 as unknown as string);
    heading.insert(0, [new Y.XmlText('Incidents')]);
    body.insert(0, [heading]);
    await acknowledged(rita);

    const restored = await api(shared.server.httpUrl, await adminToken(), 'POST', '/api/documents/report/restored/restore', { version: original });
    expect(restored.body.content).toEqual(originalJson);
    await waitFor('the editor sees the old text', () => isDeepStrictEqual(jsonOf(rita, name), originalJson));
    expect(rita.doc.getArray<Y.Map<unknown>>('sections').get(0).get('body')).toBe(body);
    const [section] = await rowsOf<Record<string, any>>(shared.db, 'acme', 'SELECT text, updated_by FROM report_sections WHERE report_id = $1', ['restored']);
    expect(section).toEqual({ text: 'All green', updated_by: 'ada' });
  });
});
