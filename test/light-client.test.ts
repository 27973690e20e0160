import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { awarenessRenewalAt, LightClient } from '../bench/harness/light-client.ts';
import { QuoteEditor } from '../bench/harness/quote-editor.ts';
import { acknowledged, connect, synced, waitFor, type Client } from './support/clients.ts';
import { createStorage, type TestStorage } from './support/database.ts';
import { ServerProcess } from './support/server.ts';
import { token } from './support/tokens.ts';

/**
 * The benchmark's load comes from light protocol-level clients: they must
 * speak to a real server exactly as far as a real provider does — see a
 * provider's edits and cursors, and be seen by it — on Concord and on the bare
 * Hocuspocus baseline alike.
 */
describe.each(['concord', 'bare'] as const)('the bench light client on %s', (target) => {
  let storage: TestStorage | undefined;
  let server: ServerProcess;
  const opened: Array<Client | LightClient> = [];

  beforeAll(async () => {
    storage = target === 'concord' ? await createStorage() : undefined;
    server = await new ServerProcess(storage?.env ?? {}, target === 'bare' ? { script: 'bench/harness/bare-server.ts' } : {}).start();
  });
  afterAll(async () => {
    for (const client of opened) {
      if (client instanceof LightClient) await client.close();
      else client.provider.destroy();
    }
    await server.stop();
    await storage?.drop();
  });

  it('exchanges edits and awareness with a real provider, and times its acknowledgements', async () => {
    const name = `acme/quote/light-${target}`;
    const provider = connect(server.wsUrl, name, await token({ sub: 'alice' }));
    opened.push(provider);
    await synced(provider);
    provider.doc.getMap('quote').set('title', 'Written before the light client came');
    await acknowledged(provider);

    const updates: Array<[number, number, number]> = [];
    const cursors: Array<[number, number]> = [];
    const acknowledgements: number[] = [];
    const light = await LightClient.connect({
      url: server.wsUrl,
      document: name,
      token: await token({ sub: 'bob' }),
      awareness: { user: { id: 'bob', name: 'Bob', color: '#000000' } },
      applyUpdates: true,
      receptions: { update: (client, clock, length) => updates.push([client, clock, length]), awareness: (client, clock, length) => cursors.push([client, clock + length - 1]) },
      onAcknowledged: (latencyMs) => acknowledgements.push(latencyMs),
    });
    opened.push(light);
    // The first sync brought the document as it was.
    expect(light.doc.getMap('quote').get('title')).toBe('Written before the light client came');

    // Light client to provider: an edit, acknowledged and timed.
    const editor = new QuoteEditor(light.doc, 'bob');
    light.edit(() => editor.addLines(1), true);
    await light.acknowledged();
    expect(acknowledgements).toHaveLength(1);
    expect(acknowledgements[0]).toBeGreaterThan(0);
    const line = await waitFor('the light client\'s line at the provider', () => provider.doc.getArray<Y.Map<unknown>>('lines').get(0));
    expect(line.get('id')).toBe('bob-l0');

    // Provider to light client: the update arrives identified by the provider's clientID and the clock of what it made.
    const clock = Y.getState(provider.doc.store, provider.doc.clientID);
    provider.doc.getMap('quote').set('title', 'Changed by the provider');
    await waitFor('the provider\'s edit at the light client', () => updates.some(([client, from, length]) => client === provider.doc.clientID && from <= clock && clock < from + length));
    expect(light.doc.getMap('quote').get('title')).toBe('Changed by the provider');
    // Its own edits are never counted as receptions.
    expect(updates.some(([client]) => client === light.clientId)).toBe(false);

    // Awareness both ways: the light client's cursor at the provider, the provider's cursor at the light client.
    const moved = light.setAwareness({ cursor: { anchor: 3, head: 3 } });
    expect(moved.client).toBe(light.clientId);
    await waitFor('the light client\'s cursor at the provider', () => (provider.provider.awareness!.getStates().get(light.clientId) as { cursor?: { anchor: number } } | undefined)?.cursor?.anchor === 3);
    provider.provider.setAwarenessField('cursor', { anchor: 7, head: 7 });
    const providerClock = provider.provider.awareness!.meta.get(provider.doc.clientID)!.clock;
    await waitFor('the provider\'s cursor at the light client', () => cursors.some(([client, at]) => client === provider.doc.clientID && at === providerClock));

    // Its state is renewed as a provider renews its own, by 18 s after it was sent; a renewal its load process
    // got to late (at 18 s) does not put off the next: that one is due 15 s after the first was, by 33 s.
    const lightClock = () => provider.provider.awareness!.meta.get(light.clientId)?.clock;
    expect(lightClock()).toBe(moved.clock);
    light.renewAwarenessIfDue(moved.at + 18_000);
    await waitFor('the light client\'s renewal at the provider', () => lightClock() === moved.clock + 1);
    light.renewAwarenessIfDue(moved.at + 33_000);
    await waitFor('the light client\'s next renewal at the provider', () => lightClock() === moved.clock + 2);
    expect(light.refusals).toEqual([]);
  });
});

describe('the bench light client\'s awareness renewals', () => {
  it('fall at a check of its own 15 – 18 s after the state was sent, so that clients sent together come apart', () => {
    const sentAt = 1_000_000.5;
    const renewals = [0, 700, 1_500, 2_999].map((phase) => {
      const at = awarenessRenewalAt(sentAt, phase);
      expect(at - sentAt).toBeGreaterThanOrEqual(15_000);
      expect(at - sentAt).toBeLessThan(18_000);
      expect(Math.abs((at - phase) % 3_000)).toBeLessThan(1e-6);
      return at;
    });
    expect(new Set(renewals).size).toBe(renewals.length);
  });
});
