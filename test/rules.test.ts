import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { appendUpdates } from '../src/db/updates.ts';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { replay } from '../src/persistence/replay.ts';
import { acknowledged, goOffline, waitFor, type Client } from './support/clients.ts';
import { api, updateFrom } from './support/documents.ts';
import { fieldChanges, loggedUpdates } from './support/inspect.ts';
import {
  addComment,
  adminToken,
  addMember,
  appendParagraph,
  attempt,
  expectAccepted,
  expectHttpRefusal,
  expectObserverHolds,
  expectOnlyUpdatesBy,
  expectRawApplied,
  expectRawRefused,
  expectRefused,
  footprint,
  lock,
  locksSeenBy,
  memberById,
  openAs,
  patch,
  patched,
  positionOf,
  RawWriter,
  rendered,
  setFieldPolicy,
  unlock,
  write,
  type RulesTarget,
} from './support/rules.ts';
import { sharedServer } from './support/shared-server.ts';

/**
 * Business rules enforced where writes arrive (issue 16, DESIGN.md): frozen
 * statuses and transitions, valid values, field permissions and locks, from
 * providers, PATCH, restore and raw frames. Every refused write is checked to
 * have left nothing anywhere (document, history, audit rows, events, tables,
 * other clients), and its allowed neighbour to go in.
 */
const shared = sharedServer();
const acme = (): RulesTarget => ({ httpUrl: shared.server.httpUrl, wsUrl: shared.server.wsUrl, db: shared.db, tenant: 'acme' });

const QUOTE = {
  quote: { number: 'Q-1', title: 'Pumps', customerName: 'Riverside', currency: 'EUR', validUntil: '2026-12-31', discountPct: 5, taxPct: 20 },
  notes: 'Delivery in May',
  lines: {
    add: [
      { id: 'l1', sku: 'P-1', description: 'Pump', quantity: 2, unitPrice: 10 },
      { id: 'l2', sku: 'V-1', description: 'Valve', quantity: 1, unitPrice: 4.5 },
    ],
  },
};
const REPORT = {
  report: { title: 'March', projectId: 'p-1', period: '2026-03', status: 'in_review' },
  sections: { add: [{ id: 's1', title: 'Progress', text: 'On track' }, { id: 's2', title: 'Risks', text: 'None' }] },
};
const INVOICE = {
  invoice: { number: 'INV-1', customerName: 'Riverside', status: 'issued', currency: 'EUR', issueDate: '2026-12-01', dueDate: '2026-12-31', taxPct: 19 },
  notes: 'Payable within 30 days',
  lines: { add: [{ id: 'l1', sku: 'S-1', description: 'Service', quantity: 1, unitPrice: 100 }] },
};

/** Header and member rows without the columns a comment-only update may touch. */
function tableContent(rows: Array<Record<string, unknown>>) {
  return rows.map(({ version: _version, updated_at: _at, updated_by: _by, ...rest }) => rest);
}

/** A content write: the title and a line's quantity in one update. */
const titleAndQuantity = (doc: Y.Doc) => {
  doc.getMap('quote').set('title', 'Changed while frozen');
  memberById(doc, 'lines', 'l1').set('quantity', 99);
};

describe('frozen documents', () => {
  it.each([
    ['accepted', ['accepted']],
    ['rejected', ['rejected']],
    ['expired', ['sent', 'expired']],
  ])('a quote %s refuses every content write whole (provider, admin, PATCH); commenters and editors still comment', async (status, path) => {
    const target = acme();
    const name = `acme/quote/frozen-${status}`;
    await patched(target, name, QUOTE);
    for (const step of path.slice(0, -1)) await patched(target, name, { quote: { status: step } });
    // The update that freezes may edit too: it is judged against the status before it.
    const freezer = await openAs(target, name, 'fred', 'editor');
    expectAccepted(
      await write(freezer, (doc) => {
        doc.getMap('quote').set('status', path.at(-1));
        doc.getMap('quote').set('title', 'Final pumps');
      }),
    );
    freezer.provider.destroy();
    const observer = await openAs(target, name, 'olga', 'viewer');
    const before = await footprint(target, name);
    expect(before.content.quote).toMatchObject({ status, title: 'Final pumps' });

    const refused = [
      expectRefused(await attempt(target, name, 'eve', 'editor', titleAndQuantity), 'document-frozen', ['quote.title', 'quote_line.quantity']),
      expectRefused(await attempt(target, name, 'ada', 'admin', (doc) => doc.getText('notes').insert(0, 'Admin: ')), 'document-frozen', ['quote.notes']),
      expectRefused(await attempt(target, name, 'eve', 'editor', (doc) => addMember(doc, 'lines', { id: 'l3', quantity: 1, unitPrice: 1 })), 'document-frozen'),
      expectRefused(await attempt(target, name, 'eve', 'editor', (doc) => doc.getArray('lines').delete(positionOf(doc, 'lines', 'l2'), 1)), 'document-frozen'),
    ];
    expectHttpRefusal(await patch(target, name, 'eve', 'editor', { quote: { title: 'By API' } }), 409, 'document-frozen', ['quote.title']);
    expectHttpRefusal(await patch(target, name, 'eve', 'editor', { lines: { update: [{ id: 'l1', unitPrice: 1 }] } }), 409, 'document-frozen', ['quote_line.unitPrice']);
    expect(await footprint(target, name)).toEqual(before);

    expectAccepted(await attempt(target, name, 'carl', 'commenter', (doc) => addComment(doc, 'carl', 'line:l1')));
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => addComment(doc, 'eve')));
    const after = await footprint(target, name);
    const since = expectOnlyUpdatesBy(before, after, ['carl', 'eve']);
    expect(new Set(since.changes.map((change) => change.entity))).toEqual(new Set(['comment']));
    expect(since.events.filter((event) => event.type === 'comment.added')).toHaveLength(2);
    for (const event of since.events.filter((event) => event.type !== 'comment.added')) {
      expect(event.type).toBe('document.changed');
      expect(new Set(event.data.changes.map((change: any) => change.entity))).toEqual(new Set(['comment']));
    }
    expect({ ...after.content, comments: [] }).toEqual({ ...before.content, comments: [] });
    expect(after.content.comments.map((comment: any) => comment.authorId)).toEqual(['carl', 'eve']);
    expect(tableContent(after.headerRows)).toEqual(tableContent(before.headerRows));
    expect(tableContent(after.memberRows)).toEqual(tableContent(before.memberRows));
    await expectObserverHolds(observer, name, after.content, refused);
    observer.provider.destroy();
  });

  it('an approved report and an issued invoice are frozen too: section titles, bodies, notes and lines refused; comments go in', async () => {
    const target = acme();
    const report = 'acme/report/frozen';
    await patched(target, report, REPORT);
    await patched(target, report, { report: { status: 'approved' } });
    const reportObserver = await openAs(target, report, 'olga', 'viewer');
    const reportBefore = await footprint(target, report);
    const reportRefused = [
      expectRefused(await attempt(target, report, 'eve', 'editor', (doc) => memberById(doc, 'sections', 's1').set('title', 'Late')), 'document-frozen', ['report_section.title']),
      expectRefused(await attempt(target, report, 'eve', 'editor', (doc) => appendParagraph(doc, 's2', 'A new risk')), 'document-frozen', ['report_section.body']),
      expectRefused(await attempt(target, report, 'eve', 'editor', (doc) => doc.getMap('report').set('title', 'April')), 'document-frozen', ['report.title']),
    ];
    expectHttpRefusal(await patch(target, report, 'eve', 'editor', { sections: { update: [{ id: 's1', text: 'Rewritten' }] } }), 409, 'document-frozen');
    expect(await footprint(target, report)).toEqual(reportBefore);
    expectAccepted(await attempt(target, report, 'carl', 'commenter', (doc) => addComment(doc, 'carl', 'section:s2')));
    const reportAfter = await footprint(target, report);
    expectOnlyUpdatesBy(reportBefore, reportAfter, ['carl']);
    expect({ ...reportAfter.content, comments: [] }).toEqual({ ...reportBefore.content, comments: [] });
    await expectObserverHolds(reportObserver, report, reportAfter.content, reportRefused);
    reportObserver.provider.destroy();

    // Issued in its first update: the content and the status that freezes it go in together.
    const invoice = 'acme/invoice/frozen';
    await patched(target, invoice, INVOICE);
    const invoiceBefore = await footprint(target, invoice);
    expect(invoiceBefore.content.invoice.status).toBe('issued');
    expectRefused(await attempt(target, invoice, 'eve', 'editor', (doc) => doc.getText('notes').insert(0, 'Late: ')), 'document-frozen', ['invoice.notes']);
    expectRefused(await attempt(target, invoice, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l1').set('unitPrice', 80)), 'document-frozen', ['invoice_line.unitPrice']);
    expectHttpRefusal(await patch(target, invoice, 'eve', 'editor', { invoice: { dueDate: '2027-01-31' } }), 409, 'document-frozen', ['invoice.dueDate']);
    expect(await footprint(target, invoice)).toEqual(invoiceBefore);
    expectAccepted(await attempt(target, invoice, 'eve', 'editor', (doc) => addComment(doc, 'eve', 'line:l1')));
    expectOnlyUpdatesBy(invoiceBefore, await footprint(target, invoice), ['eve']);
  });

  it('only admins reopen a frozen document; a transition the kind does not list is bad-transition, for admins too', async () => {
    const target = acme();
    const name = 'acme/quote/reopen';
    await patched(target, name, QUOTE);
    await patched(target, name, { quote: { status: 'accepted' } });
    let before = await footprint(target, name);
    expectRefused(await attempt(target, name, 'eve', 'editor', (doc) => doc.getMap('quote').set('status', 'draft')), 'document-frozen', ['quote.status']);
    expectHttpRefusal(await patch(target, name, 'eve', 'editor', { quote: { status: 'sent' } }), 409, 'document-frozen', ['quote.status']);
    // Accepted may go back to draft or sent only, also for an admin.
    expectRefused(await attempt(target, name, 'ada', 'admin', (doc) => doc.getMap('quote').set('status', 'rejected')), 'bad-transition', ['quote.status']);
    expect(await footprint(target, name)).toEqual(before);

    expectAccepted(await attempt(target, name, 'ada', 'admin', (doc) => doc.getMap('quote').set('status', 'draft')));
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => doc.getMap('quote').set('title', 'Reopened')));
    let after = await footprint(target, name);
    const since = expectOnlyUpdatesBy(before, after, ['ada', 'eve']);
    expect(since.events.find((event) => event.type === 'status.changed')).toMatchObject({ actor: 'ada', data: { from: 'accepted', to: 'draft' } });
    expect(after.content.quote).toMatchObject({ status: 'draft', title: 'Reopened' });
    expect(after.headerRows[0]).toMatchObject({ status: 'draft', title: 'Reopened' });

    before = after;
    expectRefused(await attempt(target, name, 'eve', 'editor', (doc) => doc.getMap('quote').set('status', 'expired')), 'bad-transition', ['quote.status']);
    expectRefused(await attempt(target, name, 'ada', 'admin', (doc) => doc.getMap('quote').set('status', 'expired')), 'bad-transition', ['quote.status']);
    expectHttpRefusal(await patch(target, name, 'eve', 'editor', { quote: { status: 'expired' } }), 409, 'bad-transition', ['quote.status']);
    expect(await footprint(target, name)).toEqual(before);
    // Draft -> sent -> expired is the way.
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => doc.getMap('quote').set('status', 'sent')));
    expect((await patch(target, name, 'eve', 'editor', { quote: { status: 'expired' } })).status).toBe(200);
    after = await footprint(target, name);
    expectOnlyUpdatesBy(before, after, ['eve', 'eve']);
    expect(after.content.quote.status).toBe('expired');

    const report = 'acme/report/transitions';
    const { status: _status, ...draftHeader } = REPORT.report;
    await patched(target, report, { ...REPORT, report: draftHeader });
    const reportBefore = await footprint(target, report);
    expectRefused(await attempt(target, report, 'eve', 'editor', (doc) => doc.getMap('report').set('status', 'approved')), 'bad-transition', ['report.status']);
    expect(await footprint(target, report)).toEqual(reportBefore);
    expectAccepted(await attempt(target, report, 'eve', 'editor', (doc) => doc.getMap('report').set('status', 'in_review')));
    expect((await footprint(target, report)).content.report.status).toBe('in_review');
  });

  it('restoring a frozen document to a version with other content is refused; once an admin reopens it, the same restore goes in', async () => {
    const target = acme();
    const name = 'acme/quote/restore-frozen';
    await patched(target, name, QUOTE);
    await patched(target, name, { quote: { title: 'Pumps, revised' }, lines: { update: [{ id: 'l1', quantity: 5 }] } });
    const firstAcceptance = await patched(target, name, { quote: { status: 'accepted' } });
    await patched(target, name, { quote: { status: 'draft' } }, 'ada', 'admin');
    await patched(target, name, { quote: { title: 'Pumps, final' } });
    await patched(target, name, { quote: { status: 'accepted' } });
    const observer = await openAs(target, name, 'olga', 'viewer');
    const before = await footprint(target, name);
    const restore = async (version: number) => api(target.httpUrl, await adminToken(target), 'POST', '/api/documents/quote/restore-frozen/restore', { version });
    // Accepted then and now: only the content would change.
    expectHttpRefusal(await restore(firstAcceptance), 409, 'document-frozen', ['quote.title']);
    expect(await footprint(target, name)).toEqual(before);

    await patched(target, name, { quote: { status: 'draft' } }, 'ada', 'admin');
    const restored = await restore(firstAcceptance);
    expect(restored.status, JSON.stringify(restored.body)).toBe(200);
    const after = await footprint(target, name);
    expect(after.content.quote).toMatchObject({ title: 'Pumps, revised', status: 'accepted' });
    expect(after.content.lines[0]).toMatchObject({ id: 'l1', quantity: 5 });
    expect(after.updates.at(-1)).toMatchObject({ userId: 'auditor', origin: 'restore' });
    await expectObserverHolds(observer, name, after.content, []);
    observer.provider.destroy();
  });

  it('an admin\'s reopening update may edit content too (docs/rules.md), an editor\'s may not, nor remove the status (it reads as draft)', async () => {
    const target = acme();
    const name = 'acme/quote/reopen-and-edit';
    const draft = await patched(target, name, QUOTE);
    await patched(target, name, { quote: { title: 'Pumps, revised' } });
    await patched(target, name, { quote: { status: 'accepted' } });
    const before = await footprint(target, name);
    const reopenAndEdit = (doc: Y.Doc) => {
      doc.getMap('quote').set('status', 'draft');
      doc.getMap('quote').set('title', 'Edited while reopening');
    };
    expectRefused(await attempt(target, name, 'eve', 'editor', reopenAndEdit), 'document-frozen', ['quote.status']);
    // A status removed reads as the default (draft): the same change.
    expectRefused(await attempt(target, name, 'eve', 'editor', (doc) => doc.getMap('quote').delete('status')), 'document-frozen', ['quote.status']);
    expectHttpRefusal(await patch(target, name, 'eve', 'editor', { quote: { status: 'draft' }, lines: { update: [{ id: 'l1', quantity: 7 }] } }), 409, 'document-frozen', ['quote.status']);
    expect(await footprint(target, name)).toEqual(before);

    expectAccepted(await attempt(target, name, 'ada', 'admin', reopenAndEdit));
    let after = await footprint(target, name);
    expectOnlyUpdatesBy(before, after, ['ada']);
    expect(after.content.quote).toMatchObject({ status: 'draft', title: 'Edited while reopening' });

    // Frozen again, an admin's restore of the draft version reopens it with that version's content.
    await patched(target, name, { quote: { status: 'accepted' } });
    const restored = await api(target.httpUrl, await adminToken(target), 'POST', '/api/documents/quote/reopen-and-edit/restore', { version: draft });
    expect(restored.status, JSON.stringify(restored.body)).toBe(200);
    after = await footprint(target, name);
    expect(after.content.quote).toMatchObject({ status: 'draft', title: 'Pumps' });
  });
});

describe('valid values', () => {
  const invalid: Array<[string, (doc: Y.Doc) => void, string]> = [
    ['a string quantity', (doc) => memberById(doc, 'lines', 'l1').set('quantity', 'three'), 'quote_line.quantity'],
    ['a negative price', (doc) => memberById(doc, 'lines', 'l1').set('unitPrice', -1), 'quote_line.unitPrice'],
    ['a line discount over 100', (doc) => memberById(doc, 'lines', 'l2').set('discountPct', 101), 'quote_line.discountPct'],
    ['a header discount over 100', (doc) => doc.getMap('quote').set('discountPct', 101), 'quote.discountPct'],
    ['an unknown status', (doc) => doc.getMap('quote').set('status', 'won'), 'quote.status'],
    ['an unknown currency', (doc) => doc.getMap('quote').set('currency', 'euro'), 'quote.currency'],
    ['a malformed date', (doc) => doc.getMap('quote').set('validUntil', '31.12.2026'), 'quote.validUntil'],
    ['a date that is no day', (doc) => doc.getMap('quote').set('validUntil', '2026-02-30'), 'quote.validUntil'],
    ['a line without an id', (doc) => addMember(doc, 'lines', { sku: 'X', quantity: 1, unitPrice: 1 }), 'quote_line.id'],
    ['a duplicate line id', (doc) => addMember(doc, 'lines', { id: 'l1', sku: 'X', quantity: 1, unitPrice: 1 }), 'quote_line.id'],
    ['an id changed to another line\'s', (doc) => memberById(doc, 'lines', 'l2').set('id', 'l1'), 'quote_line.id'],
    ['a valid title with a bad quantity', (doc) => {
      doc.getMap('quote').set('title', 'Half good');
      memberById(doc, 'lines', 'l2').set('quantity', -3);
    }, 'quote_line.quantity'],
  ];

  it('a write breaking the layout is refused whole with invalid-value naming the field; the valid neighbours go in', async () => {
    const target = acme();
    const name = 'acme/quote/values';
    await patched(target, name, QUOTE);
    const observer = await openAs(target, name, 'olga', 'viewer');
    const before = await footprint(target, name);
    const refused: number[] = [];
    for (const [what, change, field] of invalid) {
      const outcome = await attempt(target, name, 'eve', 'editor', change);
      expect(outcome.refusal, what).toMatchObject({ code: 'invalid-value' });
      refused.push(expectRefused(outcome, 'invalid-value', [field]));
    }
    expect(await footprint(target, name)).toEqual(before);

    const valid: Array<(doc: Y.Doc) => void> = [
      (doc) => memberById(doc, 'lines', 'l1').set('quantity', 2.5),
      (doc) => memberById(doc, 'lines', 'l1').set('unitPrice', 0),
      (doc) => memberById(doc, 'lines', 'l2').set('discountPct', 100),
      (doc) => doc.getMap('quote').set('discountPct', 100),
      (doc) => doc.getMap('quote').set('status', 'sent'),
      (doc) => doc.getMap('quote').set('currency', 'USD'),
      (doc) => doc.getMap('quote').set('validUntil', null),
      (doc) => addMember(doc, 'lines', { id: 'l3', sku: 'X', quantity: 1, unitPrice: 1 }),
    ];
    for (const change of valid) expectAccepted(await attempt(target, name, 'eve', 'editor', change));
    const after = await footprint(target, name);
    expectOnlyUpdatesBy(before, after, valid.map(() => 'eve'));
    expect(after.content.quote).toMatchObject({ status: 'sent', currency: 'USD', validUntil: null, discountPct: 100, title: 'Pumps' });
    expect(after.content.lines).toEqual([
      expect.objectContaining({ id: 'l1', quantity: 2.5, unitPrice: 0 }),
      expect.objectContaining({ id: 'l2', quantity: 1, discountPct: 100 }),
      expect.objectContaining({ id: 'l3', quantity: 1 }),
    ]);
    expect(after.memberRows.map((row) => row.id)).toEqual(['l1', 'l2', 'l3']);
    await expectObserverHolds(observer, name, after.content, refused);
    observer.provider.destroy();
  });

  it('PATCH answers 400 invalid-value naming the field, and changes nothing', async () => {
    const target = acme();
    const name = 'acme/quote/patch-values';
    await patched(target, name, QUOTE);
    const before = await footprint(target, name);
    const bodies: Array<[unknown, string]> = [
      [{ lines: { update: [{ id: 'l1', quantity: -2 }] } }, 'quote_line.quantity'],
      [{ lines: { update: [{ id: 'l1', quantity: 'three' }] } }, 'quote_line.quantity'],
      [{ lines: { add: [{ id: 'l9', unitPrice: -0.01 }] } }, 'quote_line.unitPrice'],
      [{ quote: { discountPct: 101 } }, 'quote.discountPct'],
      [{ quote: { status: 'won' } }, 'quote.status'],
      [{ quote: { currency: 'eur' } }, 'quote.currency'],
      [{ quote: { title: 'ok', validUntil: '2026-02-30' } }, 'quote.validUntil'],
    ];
    for (const [body, field] of bodies) expectHttpRefusal(await patch(target, name, 'eve', 'editor', body), 400, 'invalid-value', [field]);
    expect(await footprint(target, name)).toEqual(before);
    expect((await patch(target, name, 'eve', 'editor', { quote: { discountPct: 100, validUntil: '2027-02-28' }, lines: { update: [{ id: 'l1', quantity: 0 }] } })).status).toBe(200);
    expectOnlyUpdatesBy(before, await footprint(target, name), ['eve']);
  });

  it('a document already holding bad values (written straight to the log) reads them as null, keeps them stored, and takes valid writes', async () => {
    const target = acme();
    const name = 'acme/quote/legacy';
    const legacy = new Y.Doc();
    legacy.transact(() => {
      legacy.getMap('quote').set('title', 'Legacy');
      legacy.getMap('quote').set('currency', 'euro');
      addMember(legacy, 'lines', { id: 'l1', sku: 'P-1', quantity: 'three', unitPrice: 10 });
    });
    await shared.db.transaction('acme', (sql) =>
      appendUpdates(sql, [{ document: parseDocumentName(name), update: Y.encodeStateAsUpdate(legacy), userId: 'importer', origin: 'client', receivedAt: new Date() }]),
    );
    const before = await footprint(target, name);
    expect(before.content.quote).toMatchObject({ title: 'Legacy', currency: null });
    expect(before.content.lines[0]).toMatchObject({ id: 'l1', sku: 'P-1', quantity: null, unitPrice: 10 });

    // Writes that leave the bad values alone go in, also beside them in the same line.
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => doc.getMap('quote').set('title', 'Legacy, kept')));
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l1').set('description', 'Pump')));
    const after = await footprint(target, name);
    expectOnlyUpdatesBy(before, after, ['eve', 'eve']);
    expect(after.content.quote).toMatchObject({ title: 'Legacy, kept', currency: null });
    expect(after.content.lines[0]).toMatchObject({ description: 'Pump', quantity: null });
    // Nothing stored is lost: the log still holds the bad values.
    const stored = replay(null, await loggedUpdates(shared.db, 'acme', name));
    expect(stored.getMap('quote').get('currency')).toBe('euro');
    expect(memberById(stored, 'lines', 'l1').get('quantity')).toBe('three');
    stored.destroy();
    // Fixing one goes in; writing another bad one does not.
    expectRefused(await attempt(target, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l1').set('unitPrice', 'ten')), 'invalid-value', ['quote_line.unitPrice']);
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l1').set('quantity', 3)));
    expect((await footprint(target, name)).content.lines[0]).toMatchObject({ quantity: 3, unitPrice: 10 });
  });
});

describe('raw frames that try to sneak past the reader', () => {
  it('a nested type put under a header, line or comment field is invalid-value (a commenter\'s too); the plain value goes in', async () => {
    const target = acme();
    const name = 'acme/quote/nested';
    await patched(target, name, QUOTE);
    const observer = await openAs(target, name, 'olga', 'viewer');
    const before = await footprint(target, name);
    const sneaks: Array<[(doc: Y.Doc) => void, string, string?]> = [
      [
        (doc) => {
          const nested = new Y.Map<unknown>();
          doc.getMap('quote').set('title', nested);
          const deeper = new Y.Map<unknown>();
          nested.set('text', deeper);
          deeper.set('value', 'Hidden title');
        },
        'quote.title',
      ],
      [(doc) => memberById(doc, 'lines', 'l1').set('quantity', new Y.Map()), 'quote_line.quantity'],
      [(doc) => doc.getMap('quote').set('currency', new Y.Text('EUR')), 'quote.currency'],
      [(doc) => memberById(doc, 'lines', 'l2').set('unitPrice', new Y.Array()), 'quote_line.unitPrice'],
      // Comments are open to commenters (and in frozen documents); what they hold is still the layout's.
      [
        (doc) => {
          const comment = addMember(doc, 'comments', { id: 'nested-comment', authorId: 'mallory', resolved: false });
          const body = new Y.Map<unknown>();
          comment.set('body', body);
          body.set('text', 'Hidden');
        },
        'comment.body',
      ],
      [(doc) => void addMember(doc, 'comments', { id: 'odd-comment', authorId: 'mallory', body: 'Hi', resolved: 'yes' }), 'comment.resolved', 'commenter'],
    ];
    const refused: number[] = [];
    for (const [change, field, role = 'editor'] of sneaks) {
      const writer = await RawWriter.open(target, name, 'mallory', role, observer.doc);
      expectRawRefused(await writer.write(change), 'invalid-value', [field]);
      refused.push(writer.doc.clientID);
      writer.close();
    }
    expect(await footprint(target, name)).toEqual(before);
    const writer = await RawWriter.open(target, name, 'mallory', 'editor', observer.doc);
    expectRawApplied(await writer.write((doc) => doc.getMap('quote').set('title', 'Plain title')));
    writer.close();
    const after = await footprint(target, name);
    expectOnlyUpdatesBy(before, after, ['mallory']);
    expect(after.content.quote.title).toBe('Plain title');
    await expectObserverHolds(observer, name, after.content, refused);
    observer.provider.destroy();
  });

  it('in a frozen quote a line "moved" (deleted and inserted again as a new map) is refused; a comment from the same socket goes in', async () => {
    const target = acme();
    const name = 'acme/quote/moved';
    await patched(target, name, QUOTE);
    await patched(target, name, { quote: { status: 'accepted' } });
    const observer = await openAs(target, name, 'olga', 'viewer');
    const before = await footprint(target, name);
    const writer = await RawWriter.open(target, name, 'mallory', 'editor', observer.doc);
    const move = writer.prepare((doc) => {
      const lines = doc.getArray('lines');
      const moved = (lines.get(0) as Y.Map<unknown>).toJSON();
      lines.delete(0, 1);
      addMember(doc, 'lines', moved);
    });
    expectRawRefused(await writer.send(move), 'document-frozen');
    expect(await footprint(target, name)).toEqual(before);
    // A fresh writer: the refused move is in the first one's replica.
    const commenter = await RawWriter.open(target, name, 'mallory', 'editor', observer.doc);
    expectRawApplied(await commenter.write((doc) => addComment(doc, 'mallory')));
    const after = await footprint(target, name);
    expectOnlyUpdatesBy(before, after, ['mallory']);
    expect(after.content.lines.map((line: any) => line.id)).toEqual(['l1', 'l2']);
    await expectObserverHolds(observer, name, after.content, [writer.doc.clientID]);
    writer.close();
    commenter.close();
    observer.provider.destroy();
  });

  it('an update whose forbidden part waits for a pending dependency is never applied, also once the dependency arrives', async () => {
    const target = acme();
    const cases = [
      {
        name: 'acme/quote/pending-frozen',
        setup: { quote: { status: 'accepted' } },
        // U1 (allowed in a frozen quote): a comment. U2, from the same client, so depending on U1: the title.
        first: (doc: Y.Doc) => void addComment(doc, 'mallory'),
        second: (doc: Y.Doc) => doc.getMap('quote').set('title', 'Sneaked in'),
        forbidden: (content: any) => content.quote.title === 'Sneaked in',
        code: 'document-frozen',
        fields: ['quote.title'],
      },
      {
        name: 'acme/quote/pending-value',
        setup: null,
        // U1: a valid new line. U2: a negative quantity in that line (its parent is U1's map).
        first: (doc: Y.Doc) => void addMember(doc, 'lines', { id: 'p1', quantity: 1, unitPrice: 1 }),
        second: (doc: Y.Doc) => memberById(doc, 'lines', 'p1').set('quantity', -5),
        forbidden: (content: any) => content.lines.some((line: any) => line.id === 'p1' && line.quantity !== 1),
        code: 'invalid-value',
        fields: ['quote_line.quantity'],
      },
    ];
    for (const { name, setup, first, second, forbidden, code, fields } of cases) {
      await patched(target, name, QUOTE);
      if (setup) await patched(target, name, setup);
      const watcher = await openAs(target, name, 'olga', 'viewer');
      const writer = await RawWriter.open(target, name, 'mallory', 'editor', watcher.doc);
      const u1 = writer.prepare(first);
      const u2 = writer.prepare(second);
      writer.push(u2);
      writer.push(u1);
      // U2 alone cannot be placed. Refused at once if what it deletes already breaks the rule (the frozen title),
      // else parked, out of the document; U1 goes in on its own, and what it releases, U2, is then judged as
      // mallory's and refused (the document closed). Either way: answered "not applied", with the fields.
      await waitFor('U2 refused', () => writer.traffic.refusals.length > 0 && writer.traffic.syncStatuses.includes(false));
      expectRefused(writer.traffic.refusals[0]!, code, fields);
      // A later write of someone else goes in, and nothing held back comes with it.
      expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => addComment(doc, 'eve')));
      const after = await footprint(target, name);
      expect(forbidden(after.content), `${name}: ${JSON.stringify(after.content)}`).toBe(false);
      const rebuilt = replay(null, await loggedUpdates(shared.db, 'acme', name));
      expect(forbidden(rendered(rebuilt, name)), `${name}: the log`).toBe(false);
      rebuilt.destroy();
      await acknowledged(watcher);
      await waitFor('the watcher holds what the server committed', () => JSON.stringify(rendered(watcher.doc, name)) === JSON.stringify(after.content));
      expect(forbidden(rendered(watcher.doc, name))).toBe(false);
      writer.close();
      watcher.provider.destroy();
    }
  });

  it('a header field held pending behind a comment, its clocks then filled by a plain comment, is refused once the comment it waits for arrives', async () => {
    const target = acme();
    const name = 'acme/quote/pending-clash';
    await patched(target, name, QUOTE);
    await patched(target, name, { quote: { status: 'accepted' } });
    const observer = await openAs(target, name, 'olga', 'viewer');
    const before = await footprint(target, name);
    // One user under two clientIDs: the first's comment is what the second's held run waits for.
    const first = await RawWriter.open(target, name, 'mallory', 'editor', observer.doc);
    const second = await RawWriter.open(target, name, 'mallory', 'editor', observer.doc);
    const release = first.prepare((doc) => void addComment(doc, 'mallory'));
    // A key the quote does not have yet: nothing is deleted, so nothing but the held run names the header.
    second.pushHeldBehind(first, 'mallory', (doc) => doc.getMap('quote').set('customerId', 'sneaked-in'));
    // The same clocks again, as a plain comment: the held run is kept, the field in it still waiting.
    expectRawApplied(await second.write((doc) => void addComment(doc, 'mallory')));
    // The comment it waits for goes in; the field it releases is judged as mallory's, and refused.
    expectRawApplied(await first.send(release));
    await waitFor('the held run refused', () => second.socket.of(name).closeReasons.includes('document-frozen'));
    expectRefused(second.traffic.refusals.at(-1) ?? null, 'document-frozen', ['quote.customerId']);
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => addComment(doc, 'eve')));
    const after = await footprint(target, name);
    expectOnlyUpdatesBy(before, after, ['mallory', 'mallory', 'eve']);
    expect(after.content.quote).toEqual(before.content.quote);
    const logged = replay(null, await loggedUpdates(shared.db, 'acme', name));
    expect(rendered(logged, name).quote).toEqual(before.content.quote);
    logged.destroy();
    await expectObserverHolds(observer, name, after.content, []);
    first.close();
    second.close();
    observer.provider.destroy();
  });
});

describe('parked writes', () => {
  it('the same run parked by two connections (a client that reconnected) is answered on both once released, committed once', async () => {
    const target = acme();
    const name = 'acme/quote/pending-twice';
    await patched(target, name, QUOTE);
    const observer = await openAs(target, name, 'olga', 'viewer');
    const carl = await RawWriter.open(target, name, 'carl', 'editor', observer.doc);
    const before = await RawWriter.open(target, name, 'mallory', 'editor', observer.doc);
    const after = await RawWriter.open(target, name, 'mallory', 'editor', observer.doc);
    const release = carl.prepare((doc) => void addComment(doc, 'carl'));
    // A comment of the connection's own, answered, shows the run was handled (a socket's messages go in order) and parked.
    const run = before.pushHeldBehind(carl, 'mallory', (doc) => doc.getMap('quote').set('customerId', 'c-42'));
    expectRawApplied(await before.send(commentOn(observer.doc, 'mallory')));
    after.push(run);
    expectRawApplied(await after.send(commentOn(observer.doc, 'mallory')));
    // Released for the first connection; the second's copy then brings nothing new (no update follows it).
    expectRawApplied(await carl.send(release));
    await waitFor('both runs answered', () => before.traffic.syncStatuses.length === 2 && after.traffic.syncStatuses.length === 2);
    expect([before.traffic.syncStatuses, after.traffic.syncStatuses]).toEqual([
      [true, true],
      [true, true],
    ]);
    const stored = await footprint(target, name);
    expect(stored.content.quote.customerId).toBe('c-42');
    const changes = (await fieldChanges(shared.db, 'acme', name)).filter((row) => row.field === 'customerId');
    expect(changes.map((row) => [row.new_value, row.user_id])).toEqual([['c-42', 'mallory']]);
    await expectObserverHolds(observer, name, stored.content, []);
    for (const writer of [carl, before, after]) writer.close();
    observer.provider.destroy();
  });
});

describe('field permissions', () => {
  const policyco = (): RulesTarget => ({ ...acme(), tenant: 'policyco' });

  it('quote_line.unitPrice and quote.discountPct for admins: editors are refused field-not-allowed (also in a new line, also by PATCH); admins and other fields go in', async () => {
    const target = policyco();
    const name = 'policyco/quote/priced';
    await patched(target, name, QUOTE);
    await setFieldPolicy(target, { 'quote_line.unitPrice': 'admin', 'quote.discountPct': 'admin' });
    // Every instance enforces a change within a second; this one is polled with a write that changes nothing.
    await waitFor('the policy enforced', async () => (await patch(target, name, 'eve', 'editor', { lines: { update: [{ id: 'l1', unitPrice: 10 }] } })).status === 403, 5_000);
    const observer = await openAs(target, name, 'olga', 'viewer');
    const before = await footprint(target, name);
    const refused = [
      expectRefused(await attempt(target, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l1').set('unitPrice', 1)), 'field-not-allowed', ['quote_line.unitPrice']),
      expectRefused(await attempt(target, name, 'eve', 'editor', (doc) => addMember(doc, 'lines', { id: 'l3', quantity: 1, unitPrice: 7 })), 'field-not-allowed', ['quote_line.unitPrice']),
      expectRefused(await attempt(target, name, 'eve', 'editor', (doc) => doc.getMap('quote').set('discountPct', 50)), 'field-not-allowed', ['quote.discountPct']),
    ];
    expectHttpRefusal(await patch(target, name, 'eve', 'editor', { lines: { add: [{ id: 'l4', quantity: 1, unitPrice: 2 }] } }), 403, 'field-not-allowed', ['quote_line.unitPrice']);
    expect(await footprint(target, name)).toEqual(before);

    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l1').set('quantity', 7)));
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => addMember(doc, 'lines', { id: 'l5', sku: 'N', quantity: 1 })));
    expectAccepted(await attempt(target, name, 'ada', 'admin', (doc) => memberById(doc, 'lines', 'l5').set('unitPrice', 3)));
    expect((await patch(target, name, 'ada', 'admin', { quote: { discountPct: 10 } })).status).toBe(200);
    const after = await footprint(target, name);
    expectOnlyUpdatesBy(before, after, ['eve', 'eve', 'ada', 'ada']);
    expect(after.content.quote.discountPct).toBe(10);
    expect(after.content.lines).toEqual([
      expect.objectContaining({ id: 'l1', quantity: 7, unitPrice: 10 }),
      expect.objectContaining({ id: 'l2', unitPrice: 4.5 }),
      expect.objectContaining({ id: 'l5', quantity: 1, unitPrice: 3 }),
    ]);
    await expectObserverHolds(observer, name, after.content, refused);
    observer.provider.destroy();

    // Another tenant is not bound by policyco's permissions.
    const elsewhere = 'acme/quote/unpoliced';
    await patched(acme(), elsewhere, QUOTE);
    expectAccepted(await attempt(acme(), elsewhere, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l1').set('unitPrice', 1)));

    // Lifted: editors set prices again.
    await setFieldPolicy(target, {});
    await waitFor('the policy lifted', async () => (await patch(target, name, 'eve', 'editor', { lines: { update: [{ id: 'l1', unitPrice: 10 }] } })).status === 200, 5_000);
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l2').set('unitPrice', 5)));
  });

  it("parked writes of two users released by one change are judged each as its own user: the admin's line goes in, the editor's price is refused", async () => {
    const target = policyco();
    const name = 'policyco/quote/parked-two-users';
    await patched(target, name, QUOTE);
    await setFieldPolicy(target, { 'quote_line.unitPrice': 'admin', 'quote.discountPct': 'admin' });
    await waitFor('the policy enforced', async () => (await patch(target, name, 'eve', 'editor', { lines: { update: [{ id: 'l1', unitPrice: 10 }] } })).status === 403, 5_000);
    const observer = await openAs(target, name, 'olga', 'viewer');
    const carl = await RawWriter.open(target, name, 'carl', 'editor', observer.doc);
    const ada = await RawWriter.open(target, name, 'ada', 'admin', observer.doc);
    const eve = await RawWriter.open(target, name, 'eve', 'editor', observer.doc);
    const release = carl.prepare((doc) => void addComment(doc, 'carl'));
    // Each run waits for carl's comment; the admin's parks first (the longest-parked write). A comment of
    // each user's own, answered, shows their run was handled (a socket's messages go in order) and parked.
    ada.pushHeldBehind(carl, 'ada', (doc) => void addMember(doc, 'lines', { id: 'l8', quantity: 1, unitPrice: 7 }));
    expectRawApplied(await ada.send(commentOn(observer.doc, 'ada')));
    eve.pushHeldBehind(carl, 'eve', (doc) => void addMember(doc, 'lines', { id: 'l9', quantity: 1, unitPrice: 1 }));
    expectRawApplied(await eve.send(commentOn(observer.doc, 'eve')));
    expectRawApplied(await carl.send(release));
    await waitFor("eve's run refused", () => eve.socket.of(name).closeReasons.includes('field-not-allowed'));
    expectRefused(eve.traffic.refusals.at(-1) ?? null, 'field-not-allowed', ['quote_line.unitPrice']);
    expect(eve.traffic.syncStatuses).toEqual([true, false]);
    await waitFor("ada's run answered", () => ada.traffic.syncStatuses.length === 2);
    expect(ada.traffic.syncStatuses).toEqual([true, true]);
    const after = await footprint(target, name);
    expect(after.content.lines.map((line: any) => [line.id, line.unitPrice])).toEqual([
      ['l1', 10],
      ['l2', 4.5],
      ['l8', 7],
    ]);
    // Released, the admin's run is committed as hers, with its audit rows; nothing of the editor's run is.
    const newLines = (await fieldChanges(shared.db, 'policyco', name)).filter((row) => row.entity === 'quote_line' && ['l8', 'l9'].includes(row.entity_id!));
    expect(newLines.map((row) => [row.entity_id, row.action, (row.new_value as any).unitPrice, row.user_id])).toEqual([['l8', 'create', 7, 'ada']]);
    await expectObserverHolds(observer, name, after.content, []);
    for (const writer of [carl, ada, eve]) writer.close();
    observer.provider.destroy();
  });
});

describe('locks', () => {
  it('a locked line: other editors\' writes (provider, PATCH, raw deletes) are refused naming the holder; the holder and other lines go in; released, it is free', async () => {
    const target = acme();
    const name = 'acme/quote/locked-line';
    await patched(target, name, QUOTE);
    const lena = await openAs(target, name, 'lena', 'editor');
    const taken = await lock(target, name, 'lena', 'line:l1', 120);
    expect(taken.status, JSON.stringify(taken.body)).toBe(201);
    const observer = await openAs(target, name, 'olga', 'viewer');
    const before = await footprint(target, name);
    const holder = { userId: 'lena', name: 'Lena' };

    const byEve = await attempt(target, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l1').set('quantity', 3));
    expectRefused(byEve, 'locked', ['quote_line.quantity']);
    expect(byEve.refusal).toMatchObject({ target: 'line:l1', holder });
    const byAdmin = await attempt(target, name, 'ada', 'admin', (doc) => memberById(doc, 'lines', 'l1').set('description', 'Admin pump'));
    expectRefused(byAdmin, 'locked');
    const patchedLocked = await patch(target, name, 'eve', 'editor', { lines: { update: [{ id: 'l1', unitPrice: 12 }] } });
    expectHttpRefusal(patchedLocked, 409, 'locked');
    expect(patchedLocked.body.error).toMatchObject({ target: 'line:l1', holder });
    const removeByPatch = await patch(target, name, 'eve', 'editor', { lines: { remove: ['l1'] } });
    expectHttpRefusal(removeByPatch, 409, 'locked');

    const raw = [await RawWriter.open(target, name, 'mallory', 'editor', observer.doc), await RawWriter.open(target, name, 'mallory', 'editor', observer.doc)];
    const deleted = await raw[0]!.write((doc) => doc.getArray('lines').delete(positionOf(doc, 'lines', 'l1'), 1));
    expectRawRefused(deleted, 'locked');
    expect(deleted.refusal).toMatchObject({ target: 'line:l1', holder });
    expectRawRefused(await raw[1]!.write((doc) => memberById(doc, 'lines', 'l1').delete('quantity')), 'locked');
    for (const writer of raw) writer.close();
    expect(await footprint(target, name)).toEqual(before);

    expectAccepted(await write(lena, (doc) => memberById(doc, 'lines', 'l1').set('quantity', 4)));
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l2').set('quantity', 6)));
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => doc.getMap('quote').set('title', 'Title is free')));
    const after = await footprint(target, name);
    expectOnlyUpdatesBy(before, after, ['lena', 'eve', 'eve']);
    expect(after.content.lines).toEqual([expect.objectContaining({ id: 'l1', quantity: 4, description: 'Pump' }), expect.objectContaining({ id: 'l2', quantity: 6 })]);
    await expectObserverHolds(observer, name, after.content, [byEve.clientID, byAdmin.clientID, raw[0]!.doc.clientID, raw[1]!.doc.clientID]);

    expect(await unlock(target, name, 'lena', 'line:l1')).toBe(204);
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => memberById(doc, 'lines', 'l1').set('quantity', 8)));
    expect((await footprint(target, name)).content.lines[0].quantity).toBe(8);
    lena.provider.destroy();
    observer.provider.destroy();
  });

  it('a section locked over the WebSocket and a header field locked until it expires: others are refused, neighbours go in, expiry frees it', async () => {
    const target = acme();
    const report = 'acme/report/locked-section';
    await patched(target, report, REPORT);
    const rita = await openAs(target, report, 'rita', 'editor');
    rita.provider.sendStateless(JSON.stringify({ type: 'concord:lock', target: 'section:s1', ttlSeconds: 120 }));
    await waitFor('the lock seen live', () => locksSeenBy(rita)?.some((held) => held.target === 'section:s1' && held.userId === 'rita'));
    const reportBefore = await footprint(target, report);
    const body = await attempt(target, report, 'sam', 'editor', (doc) => appendParagraph(doc, 's1', 'Mine now'));
    expectRefused(body, 'locked', ['report_section.body']);
    expect(body.refusal).toMatchObject({ target: 'section:s1', holder: { userId: 'rita', name: 'Rita' } });
    expectRefused(await attempt(target, report, 'sam', 'editor', (doc) => memberById(doc, 'sections', 's1').set('title', 'Taken over')), 'locked', ['report_section.title']);
    expect(await footprint(target, report)).toEqual(reportBefore);
    expectAccepted(await attempt(target, report, 'sam', 'editor', (doc) => appendParagraph(doc, 's2', 'Another risk')));
    expectAccepted(await write(rita, (doc) => appendParagraph(doc, 's1', 'Rita writes')));
    const reportAfter = await footprint(target, report);
    expectOnlyUpdatesBy(reportBefore, reportAfter, ['sam', 'rita']);
    expect(reportAfter.content.sections.map((section: any) => section.text)).toEqual([expect.stringContaining('Rita writes'), expect.stringContaining('Another risk')]);
    rita.provider.destroy();

    const name = 'acme/quote/locked-field';
    await patched(target, name, QUOTE);
    const lena = await openAs(target, name, 'lena', 'editor');
    expect((await lock(target, name, 'lena', 'field:title', 2)).status).toBe(201);
    expect((await lock(target, name, 'lena', 'field:notes', 120)).status).toBe(201);
    const before = await footprint(target, name);
    expectRefused(await attempt(target, name, 'eve', 'editor', (doc) => doc.getMap('quote').set('title', 'Mine')), 'locked', ['quote.title']);
    expectRefused(await attempt(target, name, 'eve', 'editor', (doc) => doc.getText('notes').insert(0, 'Mine: ')), 'locked', ['quote.notes']);
    expect(await footprint(target, name)).toEqual(before);
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => doc.getMap('quote').set('customerName', 'Riverside Water')));
    // The title's lease runs out: every client is told, and the title is free.
    await waitFor('the title lock expired', () => {
      const held = locksSeenBy(lena);
      return held !== null && held.every((entry) => entry.target !== 'field:title') && held.some((entry) => entry.target === 'field:notes');
    });
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => doc.getMap('quote').set('title', 'Mine at last')));
    expectRefused(await attempt(target, name, 'eve', 'editor', (doc) => doc.getText('notes').insert(0, 'Still locked: ')), 'locked', ['quote.notes']);
    const after = await footprint(target, name);
    expectOnlyUpdatesBy(before, after, ['eve', 'eve']);
    expect(after.content.quote).toMatchObject({ title: 'Mine at last', customerName: 'Riverside Water' });
    expect(after.content.notes).toBe('Delivery in May');
    lena.provider.destroy();
  });
});

describe('a freeze and an edit at the same moment', () => {
  it('the edit is refused, or committed before the freeze: never after it (freezes over the WebSocket and by PATCH, sent first or second)', async () => {
    const target = acme();
    for (let round = 0; round < 24; round++) {
      const name = `acme/quote/race-${round}`;
      await patched(target, name, QUOTE);
      const watcher = await openAs(target, name, 'olga', 'viewer');
      const bob = await RawWriter.open(target, name, 'bob', 'editor', watcher.doc);
      const edit = bob.prepare((doc) => memberById(doc, 'lines', 'l1').set('quantity', 100 + round));
      const byPatch = round % 4 >= 2;
      const alice = byPatch ? null : await RawWriter.open(target, name, 'alice', 'editor', watcher.doc);
      const freeze = alice?.prepare((doc) => doc.getMap('quote').set('status', 'accepted'));
      const sendFreeze = () => (alice ? alice.push(freeze!) : void patch(target, name, 'alice', 'editor', { quote: { status: 'accepted' } }));
      if (round % 2 === 0) {
        bob.push(edit);
        sendFreeze();
      } else {
        sendFreeze();
        bob.push(edit);
      }
      await waitFor('both committed or answered', async () => {
        const updates = (await footprint(target, name)).updates;
        return bob.traffic.syncStatuses.length > 0 && updates.some((update) => update.userId === 'alice');
      });
      const after = await footprint(target, name);
      const seqOf = (user: string) => after.updates.find((update) => update.userId === user)?.seq as number | undefined;
      const [bobs, alices] = [seqOf('bob'), seqOf('alice')!];
      if (bobs === undefined) {
        expectRawRefused({ applied: bob.traffic.syncStatuses[0]!, refusal: bob.traffic.refusals[0] ?? null }, 'document-frozen', ['quote_line.quantity']);
        expect(after.content.lines[0].quantity).toBe(2);
      } else {
        expect(bobs, `round ${round}: bob's edit went in after the freeze`).toBeLessThan(alices);
        expect(after.content.lines[0].quantity).toBe(100 + round);
      }
      expect(after.content.quote.status).toBe('accepted');
      alice?.close();
      bob.close();
      watcher.provider.destroy();
    }
  });
});

describe('offline edits that meet a freeze', () => {
  it('are refused on reconnect with their fields named; the rest of the document (others\' edits) is intact', async () => {
    const target = acme();
    const name = 'acme/quote/offline-freeze';
    await patched(target, name, QUOTE);
    const otto: Client = await openAs(target, name, 'otto', 'editor');
    await goOffline(otto);
    otto.doc.transact(() => {
      otto.doc.getMap('quote').set('title', 'Otto was offline');
      memberById(otto.doc, 'lines', 'l2').set('quantity', 40);
    });
    // Meanwhile: another editor adds a line, then the quote is accepted.
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => addMember(doc, 'lines', { id: 'l3', sku: 'E', quantity: 2, unitPrice: 3 })));
    expectAccepted(await attempt(target, name, 'eve', 'editor', (doc) => doc.getMap('quote').set('status', 'accepted')));
    const observer = await openAs(target, name, 'olga', 'viewer');
    const before = await footprint(target, name);

    await otto.provider.connect();
    const refusal = await waitFor('otto is told', () => otto.stateless.find((message) => message.type === 'concord:refused'));
    expectRefused(refusal as any, 'document-frozen', ['quote.title', 'quote_line.quantity']);
    // Otto's replica still gets what the server holds.
    await waitFor('otto sees the freeze', () => otto.doc.getMap('quote').get('status') === 'accepted');
    expect(otto.provider.unsyncedChanges).toBeGreaterThan(0);

    const after = await footprint(target, name);
    expect(after).toEqual(before);
    expect(after.content.quote).toMatchObject({ title: 'Pumps', status: 'accepted' });
    expect(after.content.lines).toEqual([
      expect.objectContaining({ id: 'l1', quantity: 2 }),
      expect.objectContaining({ id: 'l2', quantity: 1 }),
      expect.objectContaining({ id: 'l3', quantity: 2, unitPrice: 3 }),
    ]);
    expect(after.updates.some((update) => update.userId === 'otto')).toBe(false);
    await expectObserverHolds(observer, name, after.content, [otto.doc.clientID]);
    otto.provider.destroy();
    observer.provider.destroy();
  });
});

/** A comment by `sub` under a clientID of its own, on what `from` holds. */
function commentOn(from: Y.Doc, sub: string): Uint8Array {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, Y.encodeStateAsUpdate(from));
  return updateFrom(doc, (writer) => void addComment(writer, sub));
}
