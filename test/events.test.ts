import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import type { ChangeEvent } from '../src/events/event.ts';
import { acknowledged, connect, synced, waitFor } from './support/clients.ts';
import { addComment, api, typeInto } from './support/documents.ts';
import { loggedUpdates, rowsOf } from './support/inspect.ts';
import { sharedServer } from './support/shared-server.ts';
import { token } from './support/tokens.ts';

const shared = sharedServer();
const { open } = shared;
const COVERING = new Set(['document.created', 'document.changed', 'document.restored']);

async function asAdmin(path: string) {
  return api(shared.server.httpUrl, await token({ sub: 'ada', role: 'admin' }), 'GET', path);
}

/** Every event of the tenant after `after`, page by page (small pages, so paging is exercised). */
async function allEvents(query = '', after = 0): Promise<{ events: ChangeEvent[]; next: number }> {
  const events: ChangeEvent[] = [];
  let next = after;
  for (;;) {
    const page = await asAdmin(`/api/events?after=${next}&limit=3${query}`);
    expect(page.status).toBe(200);
    events.push(...page.body.events);
    expect(page.body.next).toBeGreaterThanOrEqual(next);
    if (page.body.events.length === 0) return { events, next };
    next = page.body.next;
  }
}

function comment(doc: Y.Doc, id: string): Y.Map<unknown> {
  return doc.getArray<Y.Map<unknown>>('comments').toArray().find((map) => map.get('id') === id)!;
}

describe('change events', () => {
  it('every committed update that changed something has exactly one covering event, in seq order, with what it did (status, comments, mentions, PATCH, restore)', async () => {
    const name = 'acme/quote/events-1';
    const { next: start } = await allEvents();
    const alice = await open(name, 'alice');
    const quote = alice.doc.getMap('quote');
    quote.set('title', 'First');
    await acknowledged(alice);
    quote.set('status', 'sent');
    await acknowledged(alice);
    addComment(alice.doc, { id: 'c1', authorId: 'alice', body: 'over to you', mentions: ['bob', 'carol', 'bob'] });
    await acknowledged(alice);
    comment(alice.doc, 'c1').set('resolved', true);
    await acknowledged(alice);
    const editorToken = await token({ sub: 'erp-bot', role: 'editor' });
    expect((await api(shared.server.httpUrl, editorToken, 'PATCH', '/api/documents/quote/events-1', { quote: { customerName: 'ACME' } })).status).toBe(200);
    const restored = await api(shared.server.httpUrl, await token({ sub: 'ada', role: 'admin' }), 'POST', '/api/documents/quote/events-1/restore', { version: 1 });
    expect(restored.status).toBe(200);
    await waitFor('the restore at alice', () => quote.get('status') === undefined || quote.get('status') === 'draft');

    const { events } = await allEvents('&document=quote/events-1', start);
    const logged = await loggedUpdates(shared.db, 'acme', name);
    // One covering event per logged update (each of these changed something), in seq order.
    const covering = events.filter((event) => COVERING.has(event.type));
    expect(covering.map((event) => event.seq)).toEqual(logged.map((row) => [row.seq, row.seq]));
    expect(covering.map((event) => [event.actor, event.origin])).toEqual(logged.map((row) => [row.user_id, row.origin]));
    expect(covering.map((event) => event.type)).toEqual(['document.created', 'document.changed', 'document.changed', 'document.changed', 'document.changed', 'document.restored']);
    expect(covering[0]!.data).toMatchObject({ changes: [{ entity: 'quote', entityId: 'events-1', field: 'title', action: 'update', old: null, new: 'First' }] });
    expect(covering[4]!.data).toMatchObject({ changes: [{ field: 'customerName', new: 'ACME' }] });
    expect(covering[5]!.data).toMatchObject({ version: 1 });
    // The restore took back the status, the comment and the customer name.
    expect((covering[5]!.data as any).changes.map((change: any) => change.field).sort()).toEqual(['*', 'customerName', 'status']);

    const typed = (type: string) => events.filter((event) => event.type === type);
    expect(typed('status.changed').map((event) => [event.seq[0], event.data])).toEqual([
      [2, { from: 'draft', to: 'sent' }],
      [6, { from: 'sent', to: 'draft' }],
    ]);
    expect(typed('comment.added').map((event) => [event.seq[0], event.data])).toEqual([[3, { commentId: 'c1', parentId: null, anchor: null }]]);
    expect(typed('comment.mentioned').map((event) => event.data)).toEqual([
      { commentId: 'c1', userId: 'bob' },
      { commentId: 'c1', userId: 'carol' },
    ]);
    expect(typed('comment.resolved').map((event) => [event.seq[0], event.data])).toEqual([[4, { commentId: 'c1', parentId: null, anchor: null }]]);

    // The envelope, and the order of the feed.
    for (const event of events) {
      expect(event).toMatchObject({ tenant: 'acme', document: { name, kind: 'quote', id: 'events-1' } });
      expect(event.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(Number.isNaN(Date.parse(event.occurredAt))).toBe(false);
    }
    const positions = events.map((event) => event.position);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(new Set(positions).size).toBe(positions.length);

    // The same rows are in change_events, and nothing else for this document.
    const stored = await rowsOf<{ id: string }>(shared.db, 'acme', 'SELECT id FROM change_events WHERE name = $1 ORDER BY position', [name]);
    expect(stored.map((row) => row.id)).toEqual(events.map((event) => event.id));

    // Filters: by type; the document's activity feed for a viewer.
    const mentions = await allEvents('&type=comment.mentioned,comment.resolved', start);
    expect(mentions.events.map((event) => event.type)).toEqual(['comment.mentioned', 'comment.mentioned', 'comment.resolved']);
    const activity = await api(shared.server.httpUrl, await token({ sub: 'vic', role: 'viewer' }), 'GET', '/api/documents/quote/events-1/events?limit=1000');
    expect(activity.status).toBe(200);
    expect(activity.body.events.map((event: ChangeEvent) => event.id)).toEqual(events.map((event) => event.id));
  });

  it('updates of one author committed together share one covering event: its seq range, the text from before the first to after the last', async () => {
    const name = 'acme/quote/events-typing';
    const { next } = await allEvents();
    const typist = await open(name, 'tess');
    typeInto(typist.doc.getText('notes'), 0, 'typed fast, one keystroke per update');
    await acknowledged(typist);
    const { events } = await allEvents('&document=quote/events-typing', next);
    const logged = await loggedUpdates(shared.db, 'acme', name);
    const covering = events.filter((event) => COVERING.has(event.type));
    // Every update is covered once, in order, whatever the commits grouped.
    const covered = covering.flatMap(({ seq: [first, last] }) => Array.from({ length: last - first + 1 }, (_, at) => first + at));
    expect(covered).toEqual(logged.map((row) => row.seq));
    const notes = covering.map((event) => (event.data as any).changes.find((change: any) => change.field === 'notes'));
    expect(notes[0].old).toBe('');
    expect(notes.at(-1).new).toBe('typed fast, one keystroke per update');
    for (let at = 1; at < notes.length; at += 1) expect(notes[at].old).toBe(notes[at - 1].new);
  });

  it('long-polls until an event commits, streams as Server-Sent Events resumable from Last-Event-ID', async () => {
    const name = 'acme/quote/events-wait';
    const { next } = await allEvents();
    const waiting = asAdmin(`/api/events?after=${next}&wait=25`);
    const bob = await open(name, 'bob');
    bob.doc.getMap('quote').set('title', 'Waited for');
    const answered = await waiting;
    expect(answered.status).toBe(200);
    expect(answered.body.events[0]).toMatchObject({ type: 'document.created', document: { name } });

    bob.doc.getMap('quote').set('title', 'Second');
    await acknowledged(bob);
    const { events } = await allEvents('', next);
    expect(events.length).toBeGreaterThanOrEqual(2);

    // Resume after the first event: the stream starts with the second, then carries a new one live.
    const controller = new AbortController();
    const response = await fetch(`${shared.server.httpUrl}/api/events/stream`, {
      headers: { authorization: `Bearer ${await token({ sub: 'ada', role: 'admin' })}`, 'last-event-id': String(events[0]!.position) },
      signal: controller.signal,
    });
    expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
    const received: Array<{ id: string; event: ChangeEvent }> = [];
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of response.body!) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = /^id: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (id && data) received.push({ id, event: JSON.parse(data) });
        }
      }
    })().catch(() => {});
    await waitFor('the events after the resumed one', () => received.length >= events.length - 1);
    expect(received.slice(0, events.length - 1).map((entry) => entry.event.id)).toEqual(events.slice(1).map((event) => event.id));
    for (const entry of received) expect(entry.id).toBe(String(entry.event.position));
    bob.doc.getMap('quote').set('title', 'Live');
    await waitFor('a live event on the stream', () => received.some((entry) => (entry.event.data as any).changes?.some?.((change: any) => change.new === 'Live')));
    controller.abort();
    await reading;
  });

  it('a refused write (viewer, commenter on content) produces no event; non-admins cannot read the tenant feed; bad cursors are 400', async () => {
    const name = 'acme/quote/events-refused';
    const editor = await open(name, 'erin');
    editor.doc.getMap('quote').set('title', 'By the editor');
    await acknowledged(editor);
    const { next } = await allEvents();
    for (const role of ['viewer', 'commenter']) {
      const reader = connect(shared.server.wsUrl, name, await token({ sub: `refused-${role}`, role }));
      await synced(reader);
      reader.doc.getMap('quote').set('title', `by a ${role}`);
      await waitFor('refusal', () => reader.stateless.find((message) => message.type === 'concord:refused'));
      reader.provider.destroy();
    }
    editor.doc.getMap('quote').set('customerName', 'after the refusals');
    await acknowledged(editor);
    const { events } = await allEvents('', next);
    expect(events.filter((event) => event.document.name === name).map((event) => event.actor)).toEqual(['erin']);
    expect(JSON.stringify(events)).not.toContain('by a ');

    const editorToken = await token({ sub: 'erin', role: 'editor' });
    expect((await api(shared.server.httpUrl, editorToken, 'GET', '/api/events')).body.error.code).toBe('not-allowed');
    for (const query of ['after=-1', 'after=1e3', 'limit=0', 'type=nope', 'wait=31', 'document=quote/has%20space', 'unknown=1']) {
      const answer = await asAdmin(`/api/events?${query}`);
      expect([answer.status, query]).toEqual([400, query]);
    }
  });
});
