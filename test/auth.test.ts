import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { acknowledged, connect, refusal, synced, waitFor } from './support/clients.ts';
import { serverForSuite } from './support/suite-server.ts';
import { token } from './support/tokens.ts';

const suite = serverForSuite();

describe('refusals reach a real provider with their own reason', () => {
  it('bad-token: a token that is not a JWT, or signed with another key', async () => {
    expect(await refusal(suite.server.wsUrl, 'acme/quote/q1', 'not-a-token')).toBe('bad-token');
    expect(await refusal(suite.server.wsUrl, 'acme/quote/q1', await token({ secret: 'another-secret-another-secret-0000' }))).toBe('bad-token');
  });

  it('bad-token: a token without the tenant claim', async () => {
    expect(await refusal(suite.server.wsUrl, 'acme/quote/q1', await token({ tenant: '' }))).toBe('bad-token');
  });

  it('token-expired: a token past its exp', async () => {
    expect(await refusal(suite.server.wsUrl, 'acme/quote/q1', await token({ expiresIn: -60 }))).toBe('token-expired');
  });

  it('wrong-tenant: a document of another tenant', async () => {
    expect(await refusal(suite.server.wsUrl, 'globex/quote/q1', await token({ tenant: 'acme' }))).toBe('wrong-tenant');
  });

  it('not-allowed: a document outside the token\'s docs list', async () => {
    const limited = await token({ docs: ['quote/q1'] });
    expect(await refusal(suite.server.wsUrl, 'acme/quote/q2', limited)).toBe('not-allowed');
    const allowed = connect(suite.server.wsUrl, 'acme/quote/q1', limited);
    await synced(allowed);
    allowed.provider.destroy();
  });

  it('bad-document-name and unknown-kind', async () => {
    const valid = await token();
    expect(await refusal(suite.server.wsUrl, 'acme/quote', valid)).toBe('bad-document-name');
    expect(await refusal(suite.server.wsUrl, 'acme/quote/has space', valid)).toBe('bad-document-name');
    expect(await refusal(suite.server.wsUrl, `acme/quote/${'x'.repeat(65)}`, valid)).toBe('bad-document-name');
    expect(await refusal(suite.server.wsUrl, 'acme/no-such-kind/i1', valid)).toBe('unknown-kind');
  });

  it.each([
    ['viewer', 'read-only'],
    ['commenter', 'comments-only'],
  ])('a %s cannot change the content of a document and is told why (%s)', async (role, code) => {
    const name = `acme/quote/read-only-${role}`;
    const editor = connect(suite.server.wsUrl, name, await token({ sub: 'erin', role: 'editor' }));
    const reader = connect(suite.server.wsUrl, name, await token({ sub: 'vic', role }));
    await Promise.all([synced(editor), synced(reader)]);

    reader.doc.getMap('quote').set('title', 'changed by a reader');
    const refused = await waitFor('refusal', () => reader.stateless.find((message) => message.type === 'concord:refused'));
    expect(refused).toMatchObject({ code });
    // Never acknowledged: the provider keeps the change as unsynced.
    expect(reader.provider.unsyncedChanges).toBeGreaterThan(0);

    editor.doc.getMap('quote').set('status', 'draft');
    await acknowledged(editor);
    await waitFor('editor change at reader', () => reader.doc.getMap('quote').get('status') === 'draft');
    expect(editor.doc.getMap('quote').get('title')).toBeUndefined();
    editor.provider.destroy();
    reader.provider.destroy();

    const fresh = connect(suite.server.wsUrl, name, await token({ sub: 'fay' }));
    await synced(fresh);
    expect(fresh.doc.getMap('quote').toJSON()).toEqual({ status: 'draft' });
    fresh.provider.destroy();
  });
});

describe('a connection does not outlive its token', () => {
  function refreshingClient(name: string, tokens: Array<() => Promise<string>>) {
    const closeReasons: string[] = [];
    let calls = 0;
    const provider = new HocuspocusProvider({
      url: suite.server.wsUrl,
      name,
      document: new Y.Doc(),
      token: () => tokens[Math.min(calls++, tokens.length - 1)]!(),
      onClose: ({ event }) => closeReasons.push(event.reason),
    });
    return { provider, closeReasons, calls: () => calls };
  }

  it('asks the provider for a fresh token before exp and keeps the connection open with it', async () => {
    const client = refreshingClient('acme/quote/refreshed', [() => token({ expiresIn: 3 }), () => token({ expiresIn: 3600 })]);
    await waitFor('sync', () => client.provider.isSynced);
    await new Promise((resolve) => setTimeout(resolve, 4_500));
    expect(client.calls()).toBeGreaterThanOrEqual(2);
    expect(client.closeReasons).toEqual([]);
    client.provider.document.getMap('quote').set('title', 'after the first token expired');
    await waitFor('ack', () => client.provider.unsyncedChanges === 0);
    client.provider.destroy();
  });

  it('closes the document when the fresh token is for another user', async () => {
    const client = refreshingClient('acme/quote/refreshed-other', [() => token({ sub: 'alice', expiresIn: 3 }), () => token({ sub: 'mallory', expiresIn: 3600 })]);
    await waitFor('sync', () => client.provider.isSynced);
    await waitFor('close', () => client.closeReasons.includes('not-allowed'), 8_000);
    client.provider.destroy();
  });

  it('closes the document with token-expired at exp', async () => {
    const client = connect(suite.server.wsUrl, 'acme/quote/expiring', await token({ expiresIn: 2 }));
    await synced(client);
    await waitFor('close at expiry', () => client.closeReasons.includes('token-expired'), 8_000);
    client.provider.destroy();
  });
});

describe('every document on a multiplexed socket is authorized on its own', () => {
  it('refuses the foreign document and keeps serving the allowed one', async () => {
    const socket = new HocuspocusProviderWebsocket({ url: suite.server.wsUrl });
    const acmeToken = await token({ tenant: 'acme' });
    const mine = new HocuspocusProvider({ websocketProvider: socket, name: 'acme/quote/shared-socket', token: acmeToken, document: new Y.Doc() });
    let foreignReason = '';
    const foreign = new HocuspocusProvider({
      websocketProvider: socket,
      name: 'globex/quote/shared-socket',
      token: acmeToken,
      document: new Y.Doc(),
      onAuthenticationFailed: ({ reason }) => (foreignReason = reason),
    });
    mine.attach();
    foreign.attach();
    await waitFor('foreign refusal', () => foreignReason);
    expect(foreignReason).toBe('wrong-tenant');
    await waitFor('own document synced', () => mine.isSynced);
    mine.document.getMap('quote').set('title', 'still served');
    await waitFor('ack on the shared socket', () => mine.unsyncedChanges === 0);
    expect(foreign.isSynced).toBe(false);
    mine.destroy();
    foreign.destroy();
    socket.destroy();
  });
});

describe('HTTP', () => {
  it('answers /healthz, /readyz and /metrics, and a JSON 404', async () => {
    expect((await suite.server.get('/healthz')).status).toBe(200);
    const ready = await suite.server.get('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ checks: { postgres: 'up' } });
    const metrics = await (await suite.server.get('/metrics')).text();
    for (const name of ['concord_open_connections', 'concord_loaded_documents', 'concord_updates_received_total', 'concord_updates_persisted_total', 'concord_ack_latency_seconds_bucket', 'concord_persistence_errors_total']) {
      expect(metrics).toContain(name);
    }
    expect(metrics).toMatch(/concord_refusals_total\{code="wrong-tenant"\} [1-9]/);
    const missing = await suite.server.get('/nope');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: { code: 'not-found', message: expect.any(String) } });
  });
});
