import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { acknowledged, waitFor } from './support/clients.ts';
import { addLine, api } from './support/documents.ts';
import { fieldChanges, rowsOf } from './support/inspect.ts';
import { sharedServer } from './support/shared-server.ts';
import { token } from './support/tokens.ts';

const shared = sharedServer();
const { open } = shared;

/** A section as a Tiptap editor lays it out: a Y.Map whose `body` fragment holds paragraphs. */
function addSection(doc: Y.Doc, id: string, title: string, paragraphs: string[]): void {
  doc.transact(() => {
    const section = new Y.Map<unknown>();
    doc.getArray('sections').push([section]);
    section.set('id', id);
    section.set('title', title);
    const body = new Y.XmlFragment();
    section.set('body', body);
    body.insert(
      0,
      paragraphs.map((text) => {
        const paragraph = new Y.XmlElement('paragraph');
        paragraph.insert(0, [new Y.XmlText(text)]);
        return paragraph;
      }),
    );
  });
}

function paragraphText(doc: Y.Doc, sectionIndex: number, paragraphIndex: number): Y.XmlText {
  const section = doc.getArray<Y.Map<unknown>>('sections').get(sectionIndex);
  const paragraph = (section.get('body') as Y.XmlFragment).get(paragraphIndex) as Y.XmlElement;
  return paragraph.get(0) as Y.XmlText;
}

function sectionRows(reportId: string) {
  return rowsOf<Record<string, any>>(shared.db, 'acme', 'SELECT * FROM report_sections WHERE report_id = $1 ORDER BY position', [reportId]);
}

describe('reports: sections as ProseMirror JSON and plain text', () => {
  it('section bodies are stored as ProseMirror JSON and plain text; typing is one audit row per user and burst', async () => {
    const name = 'acme/report/monthly';
    const rita = await open(name, 'rita');
    rita.doc.transact(() => {
      const header = rita.doc.getMap('report');
      header.set('title', 'March report');
      header.set('period', '2026-03');
      header.set('status', 'in_review');
    });
    addSection(rita.doc, 's1', 'Progress', ['Done: ']);
    addSection(rita.doc, 's2', 'Risks', ['None']);
    await acknowledged(rita);
    const sam = await open(name, 'sam');
    await waitFor('sam has the sections', () => sam.doc.getArray('sections').length === 2);

    const ritaText = paragraphText(rita.doc, 0, 0);
    for (const [offset, character] of [...'design'].entries()) ritaText.insert(6 + offset, character);
    await acknowledged(rita);
    await waitFor('sam sees rita typing', () => paragraphText(sam.doc, 0, 0).toString() === 'Done: design');
    const samText = paragraphText(sam.doc, 0, 0);
    for (const [offset, character] of [...', build'].entries()) samText.insert(12 + offset, character);
    samText.format(6, 6, { bold: true });
    await acknowledged(sam);

    const rows = await sectionRows('monthly');
    expect(rows.map(({ id, position, title, text }) => ({ id, position, title, text }))).toEqual([
      { id: 's1', position: 0, title: 'Progress', text: 'Done: design, build' },
      { id: 's2', position: 1, title: 'Risks', text: 'None' },
    ]);
    expect(rows[0]!.body).toEqual({
      type: 'doc',
      content: [
        {
          type: 'paragraph',
          content: [
            { type: 'text', text: 'Done: ' },
            { type: 'text', text: 'design', marks: [{ type: 'bold' }] },
            { type: 'text', text: ', build' },
          ],
        },
      ],
    });
    expect(rows[0]!.updated_by).toBe('sam');
    const [report] = await rowsOf<Record<string, any>>(shared.db, 'acme', 'SELECT * FROM reports WHERE id = $1', ['monthly']);
    expect(report).toMatchObject({ title: 'March report', period: '2026-03', status: 'in_review', updated_by: 'sam' });

    const bodyChanges = (await fieldChanges(shared.db, 'acme', name)).filter((change) => change.entity === 'report_section' && change.field === 'body');
    expect(bodyChanges.map(({ entity_id, user_id, old_value, new_value }) => ({ entity_id, user_id, old_value, new_value }))).toEqual([
      { entity_id: 's1', user_id: 'rita', old_value: 'Done: ', new_value: 'Done: design' },
      // sam's keystrokes and his bold formatting: one burst, the text unchanged by the formatting.
      { entity_id: 's1', user_id: 'sam', old_value: 'Done: design', new_value: 'Done: design, build' },
    ]);

    // Deleting a section removes its row and audits its last fields.
    sam.doc.getArray('sections').delete(1, 1);
    await acknowledged(sam);
    expect((await sectionRows('monthly')).map((row) => row.id)).toEqual(['s1']);
    const deleted = (await fieldChanges(shared.db, 'acme', name)).find((change) => change.action === 'delete');
    expect(deleted).toMatchObject({ entity: 'report_section', entity_id: 's2', user_id: 'sam', old_value: { id: 's2', title: 'Risks', text: 'None' } });
  });

  it('PATCH adds and rewrites sections from plain text, live for a connected editor', async () => {
    const name = 'acme/report/patched';
    const editor = await open(name, 'rita');
    addSection(editor.doc, 'intro', 'Intro', ['old text']);
    await acknowledged(editor);
    const bound = (editor.doc.getArray<Y.Map<unknown>>('sections').get(0).get('body')) as Y.XmlFragment;
    const response = await api(shared.server.httpUrl, await token({ sub: 'pm-bot' }), 'PATCH', '/api/documents/report/patched', {
      report: { title: 'April', period: '2026-04' },
      sections: { update: [{ id: 'intro', text: 'first line\nsecond line' }], add: [{ id: 'next', title: 'Next steps', text: 'ship' }] },
    });
    expect(response.status).toBe(200);
    expect(response.body.content.sections.map((section: { id: string; text: string }) => [section.id, section.text])).toEqual([
      ['intro', 'first line\nsecond line'],
      ['next', 'ship'],
    ]);
    // The editor stays bound to the same fragment, which now holds the new paragraphs.
    await waitFor('the editor sees the patch', () => bound.length === 2);
    expect(bound.toArray().map((paragraph) => (paragraph as Y.XmlElement).toArray().map(String).join(''))).toEqual(['first line', 'second line']);
    expect((await sectionRows('patched')).map(({ id, text, updated_by }) => ({ id, text, updated_by }))).toEqual([
      { id: 'intro', text: 'first line\nsecond line', updated_by: 'pm-bot' },
      { id: 'next', text: 'ship', updated_by: 'pm-bot' },
    ]);
    const bad = await api(shared.server.httpUrl, await token({ sub: 'pm-bot' }), 'PATCH', '/api/documents/report/patched', { report: { period: '2026-13' } });
    expect(bad).toMatchObject({ status: 400, body: { error: { code: 'invalid-value', fields: ['report.period'] } } });
  });

  it('garbage in a section body (a BigInt attribute, NUL in a name, absurd nesting) never blocks the log or the tables', async () => {
    const name = 'acme/report/garbage';
    const raw = await open(name, 'mallory');
    raw.doc.transact(() => {
      addSection(raw.doc, 'odd', 'Odd', ['text survives']);
      const paragraph = (raw.doc.getArray<Y.Map<unknown>>('sections').get(0).get('body') as Y.XmlFragment).get(0) as Y.XmlElement;
      paragraph.setAttribute('level', 10n as unknown as string);
      paragraph.setAttribute('a\u0000b', 'x');
      addSection(raw.doc, 'deep', 'Deep', []);
      let parent: Y.XmlFragment | Y.XmlElement = raw.doc.getArray<Y.Map<unknown>>('sections').get(1).get('body') as Y.XmlFragment;
      for (let depth = 0; depth < 200; depth++) {
        const child: Y.XmlElement = new Y.XmlElement('blockquote');
        parent.insert(0, [child]);
        parent = child;
      }
    });
    await acknowledged(raw);
    const rows = await sectionRows('garbage');
    expect(rows.map(({ id, text }) => ({ id, text }))).toEqual([
      { id: 'odd', text: 'text survives' },
      { id: 'deep', text: null },
    ]);
    expect(rows[0]!.body.content[0].attrs).toEqual({ level: '10', 'a\ufffdb': 'x' });
    raw.doc.getMap('report').set('title', 'still writing');
    await acknowledged(raw);
    const [report] = await rowsOf<{ title: string }>(shared.db, 'acme', 'SELECT title FROM reports WHERE id = $1', ['garbage']);
    expect(report!.title).toBe('still writing');
  });

  it('tables that lag the log are rebuilt from the document when it loads', async () => {
    const name = 'acme/quote/rebuilt';
    const editor = await open(name, 'erin');
    editor.doc.transact(() => {
      editor.doc.getMap('quote').set('title', 'Truth');
      addLine(editor.doc, { id: 'a', quantity: 1, unitPrice: 2 });
      addLine(editor.doc, { id: 'b', quantity: 3, unitPrice: 4 });
    });
    await acknowledged(editor);
    shared.closeAll();
    await waitFor('unloaded', async () => (await shared.server.metrics()).get('concord_loaded_documents') === 0);

    // As if the tables had been added after the document was written, or had gone astray.
    await shared.db.transaction('acme', async (sql) => {
      await sql.query(`DELETE FROM quote_lines WHERE quote_id = 'rebuilt' AND id = 'a'`);
      await sql.query(`INSERT INTO quote_lines (tenant_id, quote_id, id, position, updated_at) VALUES ('acme', 'rebuilt', 'ghost', 9, now())`);
      await sql.query(`UPDATE quotes SET title = 'tampered', version = 0 WHERE id = 'rebuilt'`);
    });

    await open(name, 'fay');
    const [quote] = await rowsOf<Record<string, any>>(shared.db, 'acme', 'SELECT title, subtotal, version FROM quotes WHERE id = $1', ['rebuilt']);
    expect(quote).toEqual({ title: 'Truth', subtotal: '14.00', version: 1 });
    const lines = await rowsOf<{ id: string; position: number }>(shared.db, 'acme', 'SELECT id, position FROM quote_lines WHERE quote_id = $1 ORDER BY position', ['rebuilt']);
    expect(lines).toEqual([
      { id: 'a', position: 0 },
      { id: 'b', position: 1 },
    ]);
  });
});
