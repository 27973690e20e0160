import { describe, expect, it } from 'vitest';
import { AuditTrail } from '../src/audit/trail.ts';
import type { TrackedEntry } from '../src/commit/writer.ts';
import { runTogether, type Database } from '../src/db/database.ts';
import { ensureDocumentStatement } from '../src/db/documents.ts';
import { fieldChangePage, fieldsTouched } from '../src/db/field-changes.ts';
import { parseDocumentName } from '../src/documents/kinds.ts';
import { backends } from './support/database.ts';
import { suiteDatabase } from './support/inspect.ts';

const document = parseDocumentName('acme/quote/bursts');
const started = Date.now();

/** Update `seq` by `user`, one second after the previous: a text change (`notes`) or a header field. */
function edit(seq: number, user: string, field: 'notes' | 'customerName', value: string): TrackedEntry {
  return {
    seq,
    update: { document, update: new Uint8Array([seq]), userId: user, origin: 'client', receivedAt: new Date(started + seq * 1000) },
    changes: {
      fieldChanges: [{ entity: 'quote', entityId: 'bursts', field, action: 'update', oldValue: null, newValue: value, text: field === 'notes' }],
      rows: { header: {}, members: new Map() },
      rowsNow: () => ({ header: {}, members: new Map() }),
      memberNow: () => null,
    },
    newerQueued: () => false,
  };
}

describe.each(backends)('audit bursts on $kind', ({ kind, reason }) => {
  let db: Database;
  suiteDatabase(kind, reason, (opened) => {
    db = opened;
  });

  it('a burst row names exactly the updates that typed into it, whether extended within one commit or across commits', async ({ skip }) => {
    skip(!!reason, reason);
    const trail = new AuditTrail({ burstMs: 5_000, maxUpdates: 100 });
    const commit = (updates: Array<TrackedEntry>) =>
      db.transaction('acme', async (sql) => {
        await runTogether(sql, [ensureDocumentStatement(document)]);
        const audit = trail.prepare(updates);
        audit.committed(await runTogether(sql, audit.statements));
      });
    // One group commit: alice types, changes the customer, types again; bob types too.
    await commit([edit(1, 'alice', 'notes', 'A'), edit(2, 'alice', 'customerName', 'Acme'), edit(3, 'alice', 'notes', 'AB'), edit(4, 'bob', 'notes', 'ABx')]);
    // The next: alice changes the customer again and goes on typing in her burst.
    await commit([edit(5, 'alice', 'customerName', 'Acme Ltd'), edit(6, 'alice', 'notes', 'ABxC')]);

    const rows = await db.transaction('acme', (sql) => fieldsTouched(sql, document.name, 1, 6));
    expect(rows.map((row) => ({ user: row.user_id, field: row.field, first: row.first_seq, last: row.seq, covered: row.covered }))).toEqual([
      { user: 'alice', field: 'notes', first: 1, last: 6, covered: [1, 3, 6] },
      { user: 'alice', field: 'customerName', first: 2, last: 2, covered: [2] },
      { user: 'bob', field: 'notes', first: 4, last: 4, covered: [4] },
      { user: 'alice', field: 'customerName', first: 5, last: 5, covered: [5] },
    ]);
    // Only the part of a row inside the range asked for.
    const inside = await db.transaction('acme', (sql) => fieldsTouched(sql, document.name, 3, 5));
    expect(inside.find((row) => row.field === 'notes' && row.user_id === 'alice')?.covered).toEqual([3]);
  });

  it('ends a burst after its most updates, in one commit or across commits: the next keystroke starts a new row', async ({ skip }) => {
    skip(!!reason, reason);
    const trail = new AuditTrail({ burstMs: 5_000, maxUpdates: 3 });
    const commit = (updates: Array<TrackedEntry>) =>
      db.transaction('acme', async (sql) => {
        const audit = trail.prepare(updates);
        audit.committed(await runTogether(sql, audit.statements));
      });
    await commit([edit(11, 'carol', 'notes', 'a'), edit(12, 'carol', 'notes', 'ab')]);
    await commit([edit(13, 'carol', 'notes', 'abc'), edit(14, 'carol', 'notes', 'abcd')]);
    await commit([edit(15, 'carol', 'notes', 'abcde'), edit(16, 'carol', 'notes', 'abcdef'), edit(17, 'carol', 'notes', 'abcdefg')]);

    const touched = await db.transaction('acme', (sql) => fieldsTouched(sql, document.name, 11, 17));
    expect(touched.filter((row) => row.user_id === 'carol').map((row) => ({ first: row.first_seq, last: row.seq, covered: row.covered }))).toEqual([
      { first: 11, last: 13, covered: [11, 12, 13] },
      { first: 14, last: 16, covered: [14, 15, 16] },
      { first: 17, last: 17, covered: [17] },
    ]);
    const rows = await db.transaction('acme', (sql) => fieldChangePage(sql, document.name, { user: 'carol' }, 0, 10));
    expect(rows.map((row) => row.new_value)).toEqual(['abc', 'abcdef', 'abcdefg']);
  });
});
