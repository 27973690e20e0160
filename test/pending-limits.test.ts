import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { acknowledged, connect, synced, waitFor, type Client } from './support/clients.ts';
import { PARKED_DELETE_RANGE_BYTES } from '../src/persistence/parked-writes.ts';
import { authFrame, updateFrame } from './support/frames.ts';
import { serverForSuite } from './support/suite-server.ts';
import { token } from './support/tokens.ts';

const MAX_PENDING_BYTES = 1024 * 1024;
const MAX_PENDING_WRITES = 20;
const FLOOD_WRITES = 250;
const FLOOD_WRITE_CHARS = 100_000;
// Flood clients' ids all take the same varint length, so every flood write has the same size.
const FIRST_FLOOD_CLIENT = 1_000_000;
const WAIT_MS = 60_000;
/**
 * The server may hold MAX_PENDING_BYTES parked per document (a Y.Doc takes
 * about 12 times its encoded size); beyond that the flood only leaves garbage
 * of reading its 25 MB, which the GC takes back. Measured here: about 90 MB of
 * growth with the bound, about 310 MB for the same flood without it (the
 * setting raised to 1 GB), growing with the flood's length.
 */
const RSS_GROWTH_BOUND = 160 * MAX_PENDING_BYTES;

const suite = serverForSuite({ MAX_PENDING_BYTES: String(MAX_PENDING_BYTES), MAX_PENDING_WRITES: String(MAX_PENDING_WRITES) });

/**
 * A write of `client` that Yjs must park: it inserts `chars` characters after
 * the client's first character, which is never sent (unless `missing` is).
 */
function undeliverable(client: number, chars: number): { parked: Uint8Array; missing: Uint8Array } {
  const doc = new Y.Doc();
  doc.clientID = client;
  const notes = doc.getText('notes');
  notes.insert(0, '#');
  const missing = Y.encodeStateAsUpdate(doc);
  const before = Y.encodeStateVector(doc);
  notes.insert(1, 'x'.repeat(chars));
  return { parked: Y.encodeStateAsUpdate(doc, before), missing };
}

/** `count` writes of `client` that Yjs must park, each after the one before, all after the client's first character (never sent, unless `missing` is). */
function undeliverableRun(client: number, count: number): { parked: Uint8Array[]; missing: Uint8Array } {
  const doc = new Y.Doc();
  doc.clientID = client;
  const notes = doc.getText('notes');
  notes.insert(0, '#');
  const missing = Y.encodeStateAsUpdate(doc);
  const parked = Array.from({ length: count }, () => {
    const before = Y.encodeStateVector(doc);
    notes.insert(notes.length, 'x');
    return Y.encodeStateAsUpdate(doc, before);
  });
  return { parked, missing };
}

/** A Yjs update (v1) that only deletes `ranges` single characters of `client`, which the server never received. */
function parkedDeletes(client: number, ranges: number): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, 0); // no structs
  encoding.writeVarUint(encoder, 1); // deletes of one client
  encoding.writeVarUint(encoder, client);
  encoding.writeVarUint(encoder, ranges);
  for (let i = 0; i < ranges; i++) {
    encoding.writeVarUint(encoder, 2 * i);
    encoding.writeVarUint(encoder, 1);
  }
  return encoding.toUint8Array(encoder);
}

/**
 * Ordinary writes of the attacker's own, each answered "applied" once
 * committed: one sent behind a write shows that write was handled. Each
 * carries the whole probe history, so it applies also after a refused one.
 */
function probes(): () => Uint8Array {
  const doc = new Y.Doc();
  let count = 0;
  return () => {
    doc.getMap('quote').set('customerName', `probe ${count++}`);
    return Y.encodeStateAsUpdate(doc);
  };
}

interface RawClient {
  ws: WebSocket;
  closeReasons: string[];
  /** Answers to writes (message type 8): true for applied. */
  syncStatuses: boolean[];
}

async function rawClient(document: string, user = 'mallory', on = suite.server): Promise<RawClient> {
  const ws = new WebSocket(on.wsUrl);
  const client: RawClient = { ws, closeReasons: [], syncStatuses: [] };
  ws.on('message', (data: Buffer) => {
    const decoder = decoding.createDecoder(new Uint8Array(data));
    decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    if (type === 7) client.closeReasons.push(decoding.readVarString(decoder));
    if (type === 8) client.syncStatuses.push(decoding.readVarUint(decoder) === 1);
  });
  await new Promise((resolve) => ws.once('open', resolve));
  ws.send(authFrame(document, await token({ sub: user })));
  return client;
}

/** Sends `update` and a probe behind it: true once the server handled the update, false if it closed the document instead. */
async function sendAndProbe(client: RawClient, document: string, update: Uint8Array, probe: Uint8Array): Promise<boolean> {
  const answered = client.syncStatuses.length;
  client.ws.send(updateFrame(document, update));
  client.ws.send(updateFrame(document, probe));
  await waitFor('the probe answered or the document closed', () => client.syncStatuses.length > answered || client.closeReasons.length > 0, WAIT_MS);
  return client.closeReasons.length === 0;
}

/**
 * Sends what `client`'s parked writes wait for: each of its writes is
 * answered "applied" (`answers` in all), it stays open, and `bystander`
 * then holds `notes`.
 */
async function releaseParked(client: RawClient, document: string, missing: Uint8Array, answers: number, bystander: Client, notes: string): Promise<void> {
  client.ws.send(updateFrame(document, missing));
  await waitFor('its writes answered', () => client.syncStatuses.length === answers, WAIT_MS);
  expect(client.syncStatuses).toEqual(Array(answers).fill(true));
  expect(client.closeReasons).toEqual([]);
  await waitFor('the parked content at the bystander', () => bystander.doc.getText('notes').length > 0, WAIT_MS);
  expect(bystander.doc.getText('notes').toString()).toBe(notes);
}

async function editor(document: string, user: string, on = suite.server): Promise<Client> {
  const client = connect(on.wsUrl, document, await token({ sub: user }));
  await synced(client, WAIT_MS);
  return client;
}

/** Sets the quote's title over and over, each acknowledged before the next, until `until` settles; returns the last title. */
async function keepEditing(client: Client, prefix: string, until: Promise<unknown>): Promise<{ edits: number; last: string }> {
  let done = false;
  void until.finally(() => (done = true));
  let edits = 0;
  let last = '';
  while (!done || edits < 3) {
    last = `${prefix}-${edits}`;
    client.doc.getMap('quote').set('title', last);
    await acknowledged(client, WAIT_MS);
    edits++;
  }
  return { edits, last };
}

async function metric(name: string, on = suite.server): Promise<number> {
  return (await on.metrics()).get(name) ?? 0;
}

async function documentContent(document: string): Promise<{ quote: { title: string }; notes: string }> {
  const [, kind, id] = document.split('/');
  const response = await suite.server.get(`/api/documents/${kind}/${id}`, await token({ sub: 'reader', role: 'viewer' }));
  expect(response.status).toBe(200);
  return ((await response.json()) as { content: { quote: { title: string }; notes: string } }).content;
}

describe('pending (not yet applicable) update bytes per document are bounded by MAX_PENDING_BYTES', () => {
  it('a flood of undeliverable writes is refused at the bound and not before, memory stays bounded, and other writers keep landing', async () => {
    const flooded = 'acme/quote/flooded';
    const elsewhere = 'acme/quote/elsewhere';
    const bystander = await editor(flooded, 'bea');
    const neighbour = await editor(elsewhere, 'carl');
    const writes = Array.from({ length: FLOOD_WRITES }, (_, i) => undeliverable(FIRST_FLOOD_CLIENT + i, FLOOD_WRITE_CHARS));
    const writeBytes = writes[0]!.parked.byteLength;
    expect(writes.every(({ parked }) => parked.byteLength === writeBytes)).toBe(true);
    const fitting = Math.floor(MAX_PENDING_BYTES / writeBytes);
    const refusedBefore = await metric('concord_limits_reached_total{limit="MAX_PENDING_BYTES"}');
    const rateLimitedBefore = await metric('concord_refusals_total{code="rate-limited"}');
    const rssBefore = await metric('concord_process_resident_memory_bytes');

    const probe = probes();
    /** How many writes each attacker connection got parked before its refusal. */
    const parkedPerConnection: number[] = [];
    /** Flood clients whose parked write was dropped (or refused): their content must never appear. */
    const dropped: number[] = [];
    const flood = (async () => {
      let attacker = await rawClient(flooded);
      let parked: number[] = [];
      for (let i = 0; i < FLOOD_WRITES; i++) {
        if (await sendAndProbe(attacker, flooded, writes[i]!.parked, probe())) {
          parked.push(i);
          continue;
        }
        expect(attacker.closeReasons).toEqual(['rate-limited']);
        parkedPerConnection.push(parked.length);
        dropped.push(...parked, i);
        attacker.ws.close();
        attacker = await rawClient(flooded);
        parked = [];
      }
      attacker.ws.close();
    })();
    const [sameDocument, otherDocument] = await Promise.all([keepEditing(bystander, 'bea', flood), keepEditing(neighbour, 'carl', flood), flood]);

    // Refused exactly when the next write would take the document past the bound, every time.
    expect(parkedPerConnection.length).toBe(Math.floor(FLOOD_WRITES / (fitting + 1)));
    expect(parkedPerConnection.every((count) => count === fitting)).toBe(true);
    expect(await metric('concord_limits_reached_total{limit="MAX_PENDING_BYTES"}')).toBe(refusedBefore + parkedPerConnection.length);
    expect(await metric('concord_refusals_total{code="rate-limited"}')).toBe(rateLimitedBefore + parkedPerConnection.length);
    // 25 MB of parked writes went in; the server never held more than the bound of them at once.
    const rssGrowth = (await metric('concord_process_resident_memory_bytes')) - rssBefore;
    expect(rssGrowth).toBeLessThan(RSS_GROWTH_BOUND);
    // Refused without an exception inside Hocuspocus: the log stays one JSON line per event.
    expect(suite.server.logs.split('\n').filter((line) => line.trim() && !line.startsWith('{'))).toEqual([]);

    // Both editors' writes were acknowledged throughout and are in Postgres.
    expect(bystander.closeReasons).toEqual([]);
    expect(neighbour.closeReasons).toEqual([]);
    expect((await documentContent(flooded)).quote.title).toBe(sameDocument.last);
    expect((await documentContent(elsewhere)).quote.title).toBe(otherDocument.last);

    // What was parked was dropped: once what it depended on arrives (from its owner: the clientID is
    // mallory's, see client ownership), nothing of it applies.
    const latecomer = await rawClient(flooded, 'mallory');
    for (const i of dropped) latecomer.ws.send(updateFrame(flooded, writes[i]!.missing));
    await waitFor('the missing writes applied', () => latecomer.syncStatuses.length === dropped.length, WAIT_MS);
    expect(latecomer.syncStatuses.every(Boolean)).toBe(true);
    await waitFor('the missing writes at the bystander', () => bystander.doc.getText('notes').length === dropped.length, WAIT_MS);
    expect(bystander.doc.getText('notes').toString()).toBe('#'.repeat(dropped.length));
    latecomer.ws.close();
    bystander.provider.destroy();
    neighbour.provider.destroy();
  });
});

describe('pending writes per document are bounded by MAX_PENDING_WRITES, and parked deletes count against MAX_PENDING_BYTES', () => {
  it('tiny undeliverable writes are refused at MAX_PENDING_WRITES and not before', async () => {
    const name = 'acme/quote/tiny-flood';
    const refusedBefore = await metric('concord_limits_reached_total{limit="MAX_PENDING_WRITES"}');
    const attacker = await rawClient(name);
    const probe = probes();
    let parked = 0;
    while (await sendAndProbe(attacker, name, undeliverable(FIRST_FLOOD_CLIENT + parked, 1).parked, probe())) parked++;
    expect(parked).toBe(MAX_PENDING_WRITES);
    expect(attacker.closeReasons).toEqual(['rate-limited']);
    expect(await metric('concord_limits_reached_total{limit="MAX_PENDING_WRITES"}')).toBe(refusedBefore + 1);
    attacker.ws.close();
  });

  it("a connection refused at the bound loses its own parked writes, not another user's: hers is applied once what it waits for arrives", async () => {
    const name = 'acme/quote/shared-parking';
    const bystander = await editor(name, 'carl');
    const bea = await rawClient(name, 'bea');
    const beas = undeliverable(FIRST_FLOOD_CLIENT, 4);
    expect(await sendAndProbe(bea, name, beas.parked, probes()())).toBe(true);
    const attacker = await rawClient(name);
    const probe = probes();
    let parked = 0;
    while (await sendAndProbe(attacker, name, undeliverable(FIRST_FLOOD_CLIENT + 1 + parked, 1).parked, probe())) parked++;
    // Bea's write counts against the document's bound; passing it drops only the attacker's.
    expect(parked).toBe(MAX_PENDING_WRITES - 1);
    expect(attacker.closeReasons).toEqual(['rate-limited']);
    attacker.ws.close();

    await releaseParked(bea, name, beas.missing, 3, bystander, '#xxxx');
    expect((await documentContent(name)).notes).toBe('#xxxx');
    bea.ws.close();
    bystander.provider.destroy();
  });

  it('a write passing the bound makes the connection holding the most lose its parked writes, not the writer', async () => {
    const name = 'acme/quote/shed-parking';
    const bystander = await editor(name, 'carl');
    const attacker = await rawClient(name);
    const probe = probes();
    for (let i = 0; i < MAX_PENDING_WRITES; i++) expect(await sendAndProbe(attacker, name, undeliverable(FIRST_FLOOD_CLIENT + i, 1).parked, probe())).toBe(true);
    const refusedBefore = await metric('concord_limits_reached_total{limit="MAX_PENDING_WRITES"}');

    const bea = await rawClient(name, 'bea');
    const beas = undeliverable(FIRST_FLOOD_CLIENT + MAX_PENDING_WRITES, 4);
    expect(await sendAndProbe(bea, name, beas.parked, probes()())).toBe(true);
    await waitFor('the attacker refused', () => attacker.closeReasons.length > 0, WAIT_MS);
    expect(attacker.closeReasons).toEqual(['rate-limited']);
    expect(attacker.syncStatuses.filter((applied) => !applied)).toHaveLength(MAX_PENDING_WRITES);
    expect(await metric('concord_limits_reached_total{limit="MAX_PENDING_WRITES"}')).toBe(refusedBefore + 1);
    attacker.ws.close();

    await releaseParked(bea, name, beas.missing, 3, bystander, '#xxxx');
    bea.ws.close();
    bystander.provider.destroy();
  });

  it("one user's connections count together: filling the bound from three, mallory cannot get bea's parked writes dropped", async () => {
    const name = 'acme/quote/shed-per-user';
    const bystander = await editor(name, 'carl');
    const bea = await rawClient(name, 'bea');
    const beas = undeliverableRun(FIRST_FLOOD_CLIENT, 8);
    const beaProbe = probes();
    for (const write of beas.parked) expect(await sendAndProbe(bea, name, write, beaProbe())).toBe(true);
    const probe = probes();
    const mallory = [await rawClient(name), await rawClient(name), await rawClient(name)];
    let client = FIRST_FLOOD_CLIENT + 1;
    // Six each on two connections: the bound (20) is full, each of mallory's connections holding less than bea's.
    for (const connection of mallory.slice(0, 2)) {
      for (let i = 0; i < 6; i++) expect(await sendAndProbe(connection, name, undeliverable(client++, 1).parked, probe())).toBe(true);
    }
    expect(await sendAndProbe(mallory[2]!, name, undeliverable(client++, 1).parked, probe())).toBe(false);
    expect(mallory[2]!.closeReasons).toEqual(['rate-limited']);
    mallory.forEach((connection) => connection.ws.close());

    // Her probes, what her writes waited for, and her parked writes.
    await releaseParked(bea, name, beas.missing, 2 * beas.parked.length + 1, bystander, '#' + 'x'.repeat(beas.parked.length));
    bea.ws.close();
    bystander.provider.destroy();
  });

  it("a closed connection's parked writes go with it: they no longer count against the bound", async () => {
    const name = 'acme/quote/parked-then-gone';
    const left = MAX_PENDING_WRITES - 5;
    // Keeps the document loaded: unloading it forgets everything parked in it anyway.
    const bystander = await editor(name, 'carl');
    const first = await rawClient(name);
    const probe = probes();
    for (let i = 0; i < left; i++) expect(await sendAndProbe(first, name, undeliverable(FIRST_FLOOD_CLIENT + i, 1).parked, probe())).toBe(true);
    const open = await metric('concord_open_connections');
    first.ws.close();
    await new Promise((resolve) => first.ws.once('close', resolve));
    await waitFor('the server closed the connection', async () => (await metric('concord_open_connections')) <= open - 1, WAIT_MS);

    const second = await rawClient(name);
    let parked = 0;
    while (await sendAndProbe(second, name, undeliverable(FIRST_FLOOD_CLIENT + left + parked, 1).parked, probe())) parked++;
    expect(parked).toBe(MAX_PENDING_WRITES);
    expect(second.closeReasons).toEqual(['rate-limited']);
    second.ws.close();
    bystander.provider.destroy();
  });

  it('a parked deleted range counts PARKED_DELETE_RANGE_BYTES: deletes of unseen content are refused at MAX_PENDING_BYTES', async () => {
    const name = 'acme/quote/delete-flood';
    const ranges = 9_000;
    const first = parkedDeletes(FIRST_FLOOD_CLIENT, ranges);
    const second = parkedDeletes(FIRST_FLOOD_CLIENT + 1, ranges);
    const charge = (update: Uint8Array) => update.byteLength + PARKED_DELETE_RANGE_BYTES * ranges;
    // The first fits, the second would not; their bytes alone would.
    expect(charge(first)).toBeLessThanOrEqual(MAX_PENDING_BYTES);
    expect(charge(first) + charge(second)).toBeGreaterThan(MAX_PENDING_BYTES);
    expect(first.byteLength + second.byteLength).toBeLessThan(MAX_PENDING_BYTES);
    const refusedBefore = await metric('concord_limits_reached_total{limit="MAX_PENDING_BYTES"}');
    const attacker = await rawClient(name);
    const probe = probes();
    expect(await sendAndProbe(attacker, name, first, probe())).toBe(true);
    expect(await sendAndProbe(attacker, name, second, probe())).toBe(false);
    expect(attacker.closeReasons).toEqual(['rate-limited']);
    expect(await metric('concord_limits_reached_total{limit="MAX_PENDING_BYTES"}')).toBe(refusedBefore + 1);
    attacker.ws.close();
  });
});

describe('a parked write waits at most MAX_PENDING_AGE_MS for what it depends on', () => {
  const aged = serverForSuite({ MAX_PENDING_AGE_MS: '1000' });

  it("past it the sender's parked writes are dropped and it is refused; other clients carry on", async () => {
    const name = 'acme/quote/stale';
    const bystander = await editor(name, 'bea', aged.server);
    const droppedBefore = await metric('concord_limits_reached_total{limit="MAX_PENDING_AGE_MS"}', aged.server);
    const attacker = await rawClient(name, 'mallory', aged.server);
    const write = undeliverable(FIRST_FLOOD_CLIENT, 10);
    expect(await sendAndProbe(attacker, name, write.parked, probes()())).toBe(true);

    await waitFor('the parked write dropped', () => attacker.closeReasons.length > 0, WAIT_MS);
    expect(attacker.closeReasons).toEqual(['rate-limited']);
    expect(await metric('concord_limits_reached_total{limit="MAX_PENDING_AGE_MS"}', aged.server)).toBe(droppedBefore + 1);
    // The probe was acknowledged; the dropped write was answered "not applied" before the close.
    expect(attacker.syncStatuses).toEqual([true, false]);

    // What it depended on arrives now: the dropped write stays out.
    const latecomer = await rawClient(name, 'mallory', aged.server);
    latecomer.ws.send(updateFrame(name, write.missing));
    await waitFor('the missing write applied', () => latecomer.syncStatuses.length === 1, WAIT_MS);
    expect(latecomer.syncStatuses).toEqual([true]);
    await waitFor('the missing write at the bystander', () => bystander.doc.getText('notes').length > 0, WAIT_MS);
    expect(bystander.doc.getText('notes').toString()).toBe('#');
    bystander.doc.getMap('quote').set('title', 'still here');
    await acknowledged(bystander, WAIT_MS);
    expect(bystander.closeReasons).toEqual([]);
    attacker.ws.close();
    latecomer.ws.close();
    bystander.provider.destroy();
  });
});
