import { describe, expect, it } from 'vitest';
import { RECOVER_AFTER_MS } from '../src/persistence/log-follower.ts';
import { replay } from '../src/persistence/replay.ts';
import { waitFor } from './support/clients.ts';
import { postgresTitle, postgresUrl } from './support/database.ts';
import { loggedUpdates } from './support/inspect.ts';
import {
  addComment,
  attempt,
  expectAccepted,
  expectRawApplied,
  expectHttpRefusal,
  expectObserverHolds,
  expectOnlyUpdatesBy,
  expectRefused,
  footprint,
  lock,
  locksSeenBy,
  memberById,
  openAs,
  patch,
  patched,
  RawWriter,
  rendered,
  rulesCluster,
  type RulesTarget,
  setFieldPolicy,
  write,
} from './support/rules.ts';

/**
 * The rules hold across instances (PostgreSQL and Redis): what one instance
 * commits or sets (a freeze, a lock, a field permission) refuses a write that
 * arrives on the other.
 */
const QUOTE = {
  quote: { number: 'Q-1', title: 'Pumps', customerName: 'Riverside', currency: 'EUR' },
  lines: {
    add: [
      { id: 'l1', sku: 'P-1', quantity: 2, unitPrice: 10 },
      { id: 'l2', sku: 'V-1', quantity: 1, unitPrice: 4.5 },
    ],
  },
};

// Instances share one database: the embedded PGlite is one process's, so this needs PostgreSQL.
describe.skipIf(!postgresUrl)(postgresTitle('business rules on two instances'), () => {
  const cluster = rulesCluster();

  it('a freeze committed on instance A refuses an edit arriving on instance B, also from a replica that had not seen it', async () => {
    const [a, b] = [cluster.target(0), cluster.target(1)];
    const name = 'acme/quote/cluster-freeze';
    await patched(a, name, QUOTE);
    const bob = await openAs(b, name, 'bob', 'editor');
    const observer = await openAs(b, name, 'olga', 'viewer');
    const alice = await openAs(a, name, 'alice', 'editor');
    expectAccepted(await write(alice, (doc) => doc.getMap('quote').set('status', 'accepted')));
    // Right after the commit on A: bob's write reaches B, whatever bob's replica has seen yet.
    const refusal = await write(bob, (doc) => {
      doc.getMap('quote').set('title', 'Bob on B');
      memberById(doc, 'lines', 'l1').set('quantity', 9);
    });
    expectRefused(refusal, 'document-frozen', ['quote.title', 'quote_line.quantity']);
    const before = await footprint(b, name);
    expect(before.content.quote).toMatchObject({ status: 'accepted', title: 'Pumps' });
    expect(before.updates.map((update) => update.userId)).toEqual(['seeder', 'alice']);
    expect(await footprint(a, name)).toEqual(before);
    // A replica of B that has seen the freeze, and PATCH on B: refused alike.
    expectRefused(await attempt(b, name, 'eve', 'editor', (doc) => doc.getText('notes').insert(0, 'Late: ')), 'document-frozen', ['quote.notes']);
    expectHttpRefusal(await patch(b, name, 'eve', 'editor', { quote: { title: 'By API on B' } }), 409, 'document-frozen', ['quote.title']);
    expect(await footprint(b, name)).toEqual(before);

    expectAccepted(await attempt(b, name, 'carl', 'commenter', (doc) => void addComment(doc, 'carl')));
    const after = await footprint(a, name);
    expectOnlyUpdatesBy(before, after, ['carl']);
    await expectObserverHolds(observer, name, after.content, [bob.doc.clientID]);
    for (const client of [alice, bob, observer]) client.provider.destroy();
  });

  it('content held pending on instance B is judged when a write relayed from instance A releases it: refused, never applied on either instance', async () => {
    const [a, b] = [cluster.target(0), cluster.target(1)];
    const name = 'acme/quote/cluster-held';
    await patched(a, name, QUOTE);
    await patched(a, name, { quote: { status: 'accepted' } });
    const watchers = [await openAs(a, name, 'olga', 'viewer'), await openAs(b, name, 'olga', 'viewer')];
    const before = await footprint(b, name);
    // One user under two clientIDs: on B a run that waits for the comment it sends on A (comments stay open).
    const onA = await RawWriter.open(a, name, 'mallory', 'editor', watchers[1]!.doc);
    const onB = await RawWriter.open(b, name, 'mallory', 'editor', watchers[1]!.doc);
    const release = onA.prepare((doc) => void addComment(doc, 'mallory'));
    // A key the quote does not have yet: nothing is deleted, so nothing but the held run names the header.
    onB.pushHeldBehind(onA, 'mallory', (doc) => doc.getMap('quote').set('customerId', 'sneaked-in'));
    expectRawApplied(await onA.send(release));
    // B hears the comment through Redis and judges what it releases as the held run's sender: refused, the run
    // dropped and its connection closed. (Should the comment reach B first, the run is refused as it arrives.)
    await waitFor('the held run refused on B', () => onB.traffic.refusals.length > 0 && onB.traffic.syncStatuses.length > 0);
    expect(onB.traffic.syncStatuses).toEqual([false]);
    expectRefused(onB.traffic.refusals[0]!, 'document-frozen', ['quote.customerId']);
    // Nor does it reach A by another way (B's answers to A's sync requests, then A's log follower, which
    // logs what A holds unlogged once it has waited RECOVER_AFTER_MS): the watchers and the log are read after that.
    await new Promise((resolve) => setTimeout(resolve, RECOVER_AFTER_MS + 1_000));
    expectAccepted(await attempt(b, name, 'eve', 'editor', (doc) => addComment(doc, 'eve')));
    const after = await footprint(b, name);
    expect(after.content.quote).toEqual(before.content.quote);
    expect(await footprint(a, name)).toEqual(after);
    const logged = replay(null, await loggedUpdates(cluster.db, 'acme', name));
    expect(rendered(logged, name).quote).toEqual(before.content.quote);
    logged.destroy();
    for (const watcher of watchers) await expectObserverHolds(watcher, name, after.content, []);
    onA.close();
    onB.close();
    for (const watcher of watchers) watcher.provider.destroy();
  });

  it('a lock taken on instance A is seen live and enforced on instance B, until it expires', async () => {
    const [a, b] = [cluster.target(0), cluster.target(1)];
    const name = 'acme/quote/cluster-lock';
    await patched(a, name, QUOTE);
    const lena = await openAs(a, name, 'lena', 'editor');
    const sam = await openAs(b, name, 'sam', 'viewer');
    const taken = await lock(a, name, 'lena', 'line:l1', 3);
    expect(taken.status, JSON.stringify(taken.body)).toBe(201);
    await waitFor('the lock seen live on B', () => locksSeenBy(sam)?.some((held) => held.target === 'line:l1' && held.userId === 'lena'));
    const before = await footprint(b, name);
    const refused = await attempt(b, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l1').set('quantity', 5));
    expectRefused(refused, 'locked', ['quote_line.quantity']);
    expect(refused.refusal).toMatchObject({ target: 'line:l1', holder: { userId: 'lena', name: 'Lena' } });
    const byApi = await patch(b, name, 'eve', 'editor', { lines: { remove: ['l1'] } });
    expectHttpRefusal(byApi, 409, 'locked');
    expect(byApi.body.error).toMatchObject({ target: 'line:l1', holder: { userId: 'lena' } });
    expect(await footprint(b, name)).toEqual(before);
    expectAccepted(await attempt(b, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l2').set('quantity', 5)));

    await waitFor('the expiry seen live on B', () => locksSeenBy(sam)?.every((held) => held.target !== 'line:l1'));
    expectAccepted(await attempt(b, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l1').set('quantity', 6)));
    const after = await footprint(a, name);
    expectOnlyUpdatesBy(before, after, ['eve', 'eve']);
    expect(after.content.lines.map((line: any) => line.quantity)).toEqual([6, 5]);
    lena.provider.destroy();
    sam.provider.destroy();
  });

  it('a field permission set on instance A is enforced on instance B within about a second', async () => {
    const [a, b] = [cluster.target(0, 'policyco'), cluster.target(1, 'policyco')];
    const name = 'policyco/quote/cluster-policy';
    await patched(a, name, QUOTE);
    expectAccepted(await attempt(b, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l1').set('unitPrice', 11)));
    await setFieldPolicy(a, { 'quote_line.unitPrice': 'admin' });
    // Polled with a PATCH on B that writes the price it already has.
    await waitFor('the policy enforced on B', async () => (await patch(b, name, 'eve', 'editor', { lines: { update: [{ id: 'l1', unitPrice: 11 }] } })).status === 403);
    const before = await footprint(b, name);
    expectRefused(await attempt(b, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l2').set('unitPrice', 1)), 'field-not-allowed', ['quote_line.unitPrice']);
    expect(await footprint(b, name)).toEqual(before);
    expectAccepted(await attempt(b, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l2').set('quantity', 3)));
    expectAccepted(await attempt(b, name, 'ada', 'admin', (doc) => memberById(doc, 'lines', 'l2').set('unitPrice', 1)));
    const after = await footprint(a, name);
    expectOnlyUpdatesBy(before, after, ['eve', 'ada']);
    expect(after.content.lines[1]).toMatchObject({ quantity: 3, unitPrice: 1 });
  });
});
