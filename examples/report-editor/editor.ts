/**
 * The browser side of the report editor example: one Tiptap editor bound to
 * the rich text of one section of a Concord report, with the carets of the
 * other people editing that section. serve.ts bundles this file for the page;
 * the connection, role and refusal handling is examples/shared/session.ts.
 *
 * The report layout it relies on (docs/documents.md): `sections` is a Y.Array of
 * Y.Map, each with `id`, `title` and `body`, a Y.XmlFragment of rich text.
 */
import { Editor } from '@tiptap/core';
import { Collaboration } from '@tiptap/extension-collaboration';
import { CollaborationCaret } from '@tiptap/extension-collaboration-caret';
import { StarterKit } from '@tiptap/starter-kit';
import * as Y from 'yjs';
import { DocumentSession, element, othersPresent, showMessage, type Replica, type Role } from '../shared/session.ts';

const form = element<HTMLFormElement>('connect-form');
const presenceList = element('presence');
const editorHost = element('editor');

let session: DocumentSession | undefined;

form.addEventListener('submit', (event) => {
  // Handled here, never submitted: the token must not travel in a URL.
  event.preventDefault();
  const sectionId = element<HTMLInputElement>('section').value.trim();
  session = DocumentSession.open({
    url: element<HTMLInputElement>('url').value.trim(),
    token: element<HTMLInputElement>('token').value.trim(),
    documentName: element<HTMLInputElement>('document').value.trim(),
    describeMode,
    bind: (replica, opened) => openSection(replica, opened, sectionId),
    onPresence: showPresence,
  });
});
element('reload').addEventListener('click', () => session?.reload());

function describeMode(role: Role): string {
  if (role === 'editor' || role === 'admin') return `Editing as ${role}.`;
  return `Read-only: your role (${role}) may not change this section; the editor does not take typing.`;
}

/**
 * Binds an editor to the section's body, creating the section if it is missing and the user may write.
 * The page offers edits by the token's role; the server enforces the role, and a refused write stops the page until the user reloads it.
 */
function openSection({ provider, doc }: Replica, opened: DocumentSession, sectionId: string): () => void {
  const mayWrite = opened.mayEditContent;
  const sections = doc.getArray<Y.Map<unknown>>('sections');
  let section = sections.toArray().find((candidate) => candidate.get('id') === sectionId);
  if (!section) {
    if (!mayWrite) {
      showMessage(`This report has no section "${sectionId}", and this token may not add one.`);
      return () => {};
    }
    section = new Y.Map<unknown>([
      ['id', sectionId],
      ['title', `Section ${sectionId}`],
      ['body', new Y.XmlFragment()],
    ]);
    sections.push([section]);
  }
  const body = section.get('body');
  if (!(body instanceof Y.XmlFragment)) {
    showMessage(`Section "${sectionId}" has no rich-text body.`);
    return () => {};
  }

  opened.setPresence('focus', { sectionId });
  opened.setPresence('status', mayWrite ? 'editing' : 'viewing');
  const editor = new Editor({
    element: editorHost,
    editable: mayWrite,
    extensions: [
      // Collaboration brings its own undo, which undoes only this user's changes;
      // StarterKit's would undo other people's edits too.
      StarterKit.configure({ undoRedo: false }),
      Collaboration.configure({ fragment: body }),
      // Also puts `user` into awareness, which is what the other pages label carets with.
      CollaborationCaret.configure({ provider, user: opened.user }),
    ],
  });
  editorHost.dataset.editable = String(mayWrite);
  return () => editor.destroy();
}

/** Lists everyone else with this document open, and which section they are in. */
function showPresence({ provider }: Replica): void {
  const items = othersPresent(provider).map(({ state }) => {
    const item = document.createElement('li');
    item.dataset.userId = state.user.id ?? '';
    // textContent, never innerHTML: names come from other people's browsers.
    item.textContent = state.focus?.sectionId ? `${state.user.name} (${state.status ?? 'viewing'} section ${state.focus.sectionId})` : state.user.name;
    return item;
  });
  presenceList.replaceChildren(...items);
}
