import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import type { Role } from '../src/auth/tokens.ts';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { RuleBook } from '../src/rules/rulebook.ts';
import { addLine, lineById } from './support/documents.ts';

// Unit tests of the judgement (src/rules/check.ts through the RuleBook) on real Yjs documents; the
// same judgement over real sockets, HTTP and two instances is in rules.test.ts and rules-cluster.test.ts.

type Lock = { target: string; userId: string; name: string | null; until: string };

/**
 * A server document and a client replica of it; `write` judges what the
 * client sends, applies it if allowed, and reloads the client if refused (as
 * a refused client does: its later updates would depend on the refused one).
 */
function setUp(kind = 'quote', server = new Y.Doc()) {
  let client = replicaOf(server);
  const locks: Lock[] = [];
  const policy: Record<string, 'editor' | 'admin'> = {};
  const rules = new RuleBook({ locks: { held: () => locks }, policies: { of: async () => policy } });
  const name = parseDocumentName(`acme/${kind}/q1`);
  /** The refusal's JSON (null when allowed); an allowed update is applied to the server. */
  const write = async (change: (doc: Y.Doc) => void, role: Role = 'editor', userId = 'eve') => {
    const updates: Uint8Array[] = [];
    const capture = (update: Uint8Array) => updates.push(update);
    client.on('update', capture);
    client.transact(() => change(client));
    client.off('update', capture);
    const { judge } = await rules.judgeFor({ userId, role, tenant: 'acme', name: null, expiresAt: Date.now() + 60_000 } as never, name);
    const refusal = judge(server, Y.mergeUpdates(updates));
    if (!refusal) for (const update of updates) Y.applyUpdate(server, update);
    else client = replicaOf(server);
    return refusal?.toJSON() ?? null;
  };
  return { server, locks, policy, write };
}

/** A fresh replica of the server's document (after a refusal, a client reloads). */
function replicaOf(server: Y.Doc): Y.Doc {
  const replica = new Y.Doc();
  Y.applyUpdate(replica, Y.encodeStateAsUpdate(server));
  return replica;
}

describe('rule check', () => {
  it('a frozen quote refuses content, names the fields, keeps comments open, and only an admin reopens it', async () => {
    const { server, write } = setUp();
    expect(await write((doc) => {
      doc.getMap('quote').set('title', 'Pumps');
      doc.getMap('quote').set('status', 'sent');
      addLine(doc, { id: 'l1', quantity: 1, unitPrice: 5 });
    })).toBeNull();
    // Accepting and editing in one update is judged against the status before it: allowed.
    expect(await write((doc) => {
      doc.getMap('quote').set('status', 'accepted');
      doc.getMap('quote').set('title', 'Pumps (final)');
    })).toBeNull();
    const frozen = await write((doc) => {
      doc.getMap('quote').set('title', 'Sneaky');
      lineById(doc, 'l1')!.set('quantity', 9);
    });
    expect(frozen).toMatchObject({ code: 'document-frozen', fields: ['quote.title', 'quote_line.quantity'] });
    expect(server.getMap('quote').get('title')).toBe('Pumps (final)');

    const again = setUp('quote', server);
    expect(await again.write((doc) => doc.getArray('comments').push([new Y.Map<unknown>([['id', 'c1'], ['body', 'Congrats']])]), 'commenter')).toBeNull();
    expect(await again.write((doc) => doc.getMap('quote').set('status', 'accepted'))).toMatchObject({ code: 'document-frozen', fields: ['quote.status'] });
    expect(await again.write((doc) => doc.getMap('quote').set('status', 'draft'))).toMatchObject({ code: 'document-frozen', fields: ['quote.status'] });
    const reopened = setUp('quote', server);
    expect(await reopened.write((doc) => {
      doc.getMap('quote').set('status', 'draft');
      doc.getMap('quote').set('title', 'Pumps (revised)');
    }, 'admin')).toBeNull();
    expect(server.getMap('quote').toJSON()).toMatchObject({ status: 'draft', title: 'Pumps (revised)' });
  });

  it('a transition the kind does not list is bad-transition; overwriting a status is judged as the new value only', async () => {
    const { write } = setUp('invoice');
    expect(await write((doc) => doc.getMap('invoice').set('status', 'paid'))).toMatchObject({ code: 'bad-transition', fields: ['invoice.status'] });
    expect(await write((doc) => doc.getMap('invoice').set('status', 'issued'))).toBeNull();
    // issued -> paid overwrites the old item (a deletion of "issued"): it does not read as a move to the default, draft.
    expect(await write((doc) => doc.getMap('invoice').set('status', 'paid'), 'admin')).toBeNull();
    // paid -> draft is not listed (paid only goes back to issued).
    expect(await write((doc) => doc.getMap('invoice').set('status', 'draft'), 'admin')).toMatchObject({ code: 'bad-transition' });
  });

  it('values that break the layout are refused whole, naming each field and rule; a value overwritten before it was sent is not judged', async () => {
    const { server, write } = setUp();
    const refused = await write((doc) => {
      doc.getMap('quote').set('discountPct', 101);
      doc.getMap('quote').set('currency', 'euro');
      doc.getMap('quote').set('validUntil', '2026-02-30');
      doc.getMap('quote').set('title', new Y.Map());
      doc.getMap('quote').set('colour', 'red');
      addLine(doc, { id: 'l1', quantity: 'ten', unitPrice: -1 });
      doc.getArray('lines').push([new Y.Map<unknown>([['sku', 'no id']])]);
      doc.getArray('lines').push(['not a map']);
      doc.getMap('elsewhere').set('x', 1);
    });
    expect(refused?.code).toBe('invalid-value');
    expect((refused?.fields as string[]).toSorted()).toEqual(
      ['elsewhere', 'quote.colour', 'quote.currency', 'quote.discountPct', 'quote.title', 'quote.validUntil', 'quote_line', 'quote_line.id', 'quote_line.quantity', 'quote_line.unitPrice'].toSorted(),
    );
    expect(refused?.message).toMatch(/quote_line\.id: a member needs an id/);
    expect(server.getArray('lines').length).toBe(0);

    expect(await write((doc) => {
      addLine(doc, { id: 'l1', quantity: 'ten' });
      lineById(doc, 'l1')!.set('quantity', 10);
    })).toBeNull();
    expect(await write((doc) => addLine(doc, { id: 'l1', quantity: 1 }))).toMatchObject({ code: 'invalid-value', fields: ['quote_line.id'] });
    expect(await write((doc) => lineById(doc, 'l1')!.set('id', 'l2'))).toMatchObject({ code: 'invalid-value', fields: ['quote_line.id'] });
  });

  it('removing a section (its body and fields go with it) and moving a line (delete and re-insert with its id) are allowed', async () => {
    const report = setUp('report');
    expect(await report.write((doc) => {
      const body = new Y.XmlFragment();
      doc.getArray('sections').push([new Y.Map<unknown>([['id', 's1'], ['title', 'Risks'], ['body', body]])]);
      const paragraph = new Y.XmlElement('paragraph');
      paragraph.insert(0, [new Y.XmlText('None')]);
      body.insert(0, [paragraph]);
    })).toBeNull();
    expect(await report.write((doc) => doc.getArray('sections').delete(0, 1))).toBeNull();
    expect(report.server.getArray('sections').length).toBe(0);

    const quote = setUp();
    expect(await quote.write((doc) => ['a', 'b'].forEach((id) => addLine(doc, { id, quantity: 1 })))).toBeNull();
    expect(await quote.write((doc) => {
      const lines = doc.getArray<Y.Map<unknown>>('lines');
      const moved = new Y.Map<unknown>(Object.entries(lines.get(0).toJSON()));
      lines.delete(0, 1);
      lines.insert(1, [moved]);
    })).toBeNull();
    expect(quote.server.getArray<Y.Map<unknown>>('lines').map((line) => line.get('id'))).toEqual(['b', 'a']);

    // Two people move line b at once: each removes it and inserts a copy; the second copy's id is taken, and it goes in (Yjs keeps both).
    const move = (doc: Y.Doc) => {
      const lines = doc.getArray<Y.Map<unknown>>('lines');
      const copy = new Y.Map<unknown>(Object.entries(lines.get(0).toJSON()));
      lines.delete(0, 1);
      lines.push([copy]);
    };
    const [first, second] = [replicaOf(quote.server), replicaOf(quote.server)];
    const sent = [first, second].map((replica) => {
      const updates: Uint8Array[] = [];
      replica.on('update', (update: Uint8Array) => updates.push(update));
      move(replica);
      return Y.mergeUpdates(updates);
    });
    const rules = new RuleBook({ locks: { held: () => [] }, policies: { of: async () => ({}) } });
    for (const update of sent) {
      const { judge } = await rules.judgeFor({ userId: 'eve', role: 'editor', tenant: 'acme' } as never, parseDocumentName('acme/quote/q1'));
      expect(judge(quote.server, update)).toBeNull();
      Y.applyUpdate(quote.server, update);
    }
    expect(quote.server.getArray<Y.Map<unknown>>('lines').map((line) => line.get('id'))).toEqual(['a', 'b', 'b']);
  });

  it('field permissions reserve a field for admins, inside new lines too', async () => {
    const { policy, write } = setUp();
    policy['quote_line.unitPrice'] = 'admin';
    expect(await write((doc) => addLine(doc, { id: 'l1', quantity: 1, unitPrice: 5 }))).toMatchObject({ code: 'field-not-allowed', fields: ['quote_line.unitPrice'] });
    expect(await write((doc) => addLine(doc, { id: 'l1', quantity: 1 }))).toBeNull();
    expect(await write((doc) => lineById(doc, 'l1')!.set('unitPrice', 5), 'admin')).toBeNull();
  });

  it('a lock refuses every write touching its target by anyone but its holder, until it expires', async () => {
    const { server, locks, write } = setUp('report');
    expect(await write((doc) => {
      for (const id of ['s1', 's2']) doc.getArray('sections').push([new Y.Map<unknown>([['id', id], ['title', id], ['body', new Y.XmlFragment()]])]);
      doc.getMap('report').set('title', 'March');
    })).toBeNull();
    const until = new Date(Date.now() + 60_000).toISOString();
    locks.push({ target: 'section:s1', userId: 'bob', name: 'Bob', until }, { target: 'field:title', userId: 'bob', name: 'Bob', until });
    const typeIntoS1 = (doc: Y.Doc) => {
      const body = doc.getArray<Y.Map<unknown>>('sections').get(0).get('body') as Y.XmlFragment;
      body.insert(0, [new Y.XmlElement('paragraph')]);
    };
    expect(await write(typeIntoS1)).toMatchObject({ code: 'locked', target: 'section:s1', holder: { userId: 'bob', name: 'Bob' }, fields: ['report_section.body'] });
    expect(await write((doc) => doc.getArray('sections').delete(0, 1))).toMatchObject({ code: 'locked', fields: ['report_section'] });
    expect(await write((doc) => doc.getMap('report').set('title', 'Mine'))).toMatchObject({ code: 'locked', target: 'field:title' });
    expect(await write((doc) => doc.getArray<Y.Map<unknown>>('sections').get(1).set('title', 'Other section'))).toBeNull();
    expect(await write(typeIntoS1, 'editor', 'bob')).toBeNull();
    locks.splice(0, locks.length, { target: 'section:s1', userId: 'bob', name: 'Bob', until: new Date(Date.now() - 1).toISOString() });
    expect(await write((doc) => doc.getArray<Y.Map<unknown>>('sections').get(0).set('title', 'Expired lock'))).toBeNull();
    expect(server.getArray<Y.Map<unknown>>('sections').get(0).get('title')).toBe('Expired lock');
  });

  it('a forbidden write parked behind a missing dependency is judged with the update that releases it', async () => {
    const { server, write } = setUp();
    expect(await write((doc) => doc.getMap('quote').set('status', 'sent'))).toBeNull();
    expect(await write((doc) => doc.getMap('quote').set('status', 'accepted'))).toBeNull();
    // A replica that missed the freeze: U1 adds a line, U2 (depends on U1) edits it.
    const offline = new Y.Doc();
    Y.applyUpdate(offline, Y.encodeStateAsUpdate(server));
    const updates: Uint8Array[] = [];
    offline.on('update', (update: Uint8Array) => updates.push(update));
    offline.getArray('comments').push([new Y.Map<unknown>([['id', 'c1'], ['body', 'fine']])]);
    (offline.getArray<Y.Map<unknown>>('comments').get(0)).set('body', 'still fine');
    offline.getMap('quote').set('title', 'forbidden, sent first');
    const [u1, u2, u3] = updates as [Uint8Array, Uint8Array, Uint8Array];
    const rules = new RuleBook({ locks: { held: () => [] }, policies: { of: async () => ({}) } });
    const { judge } = await rules.judgeFor({ userId: 'eve', role: 'editor', tenant: 'acme' } as never, parseDocumentName('acme/quote/q1'));
    // u3 depends on u2 (same client): alone it changes nothing yet, so Yjs parks it.
    expect(judge(server, u3)).toBeNull();
    Y.applyUpdate(server, u3);
    expect(judge(server, u1)).toBeNull();
    Y.applyUpdate(server, u1);
    // u2 is a comment edit, allowed on its own; it would release the parked title: refused.
    expect(judge(server, u2)?.toJSON()).toMatchObject({ code: 'document-frozen', fields: ['quote.title'] });
  });

  it('an update the judge cannot read is refused with bad-update, not thrown at the caller', async () => {
    const { server, write } = setUp();
    expect(await write((doc) => doc.getMap('quote').set('title', 'Q1'))).toBeNull();
    const rules = new RuleBook({ locks: { held: () => [] }, policies: { of: async () => ({}) } });
    const { judge } = await rules.judgeFor({ userId: 'eve', role: 'editor', tenant: 'acme' } as never, parseDocumentName('acme/quote/q1'));
    const notAnUpdate = new Uint8Array([1, 200, 3, 250, 255, 255, 255, 255, 7]);
    expect(judge(server, notAnUpdate)?.toJSON()).toMatchObject({ code: 'bad-update' });
    expect(server.getMap('quote').get('title')).toBe('Q1');
  });
});
