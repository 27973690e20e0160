/**
 * The browser side of the report editor example: one Tiptap editor bound to
 * the rich text of one section of a Concord report, with the carets of the
 * other people editing that section. serve.ts bundles this file for the page.
 *
 * The report layout it relies on (see the SPEC): `sections` is a Y.Array of
 * Y.Map, each with `id`, `title` and `body`, a Y.XmlFragment of rich text.
 */
import { HocuspocusProvider } from '@hocuspocus/provider';
import { Editor } from '@tiptap/core';
import { Collaboration } from '@tiptap/extension-collaboration';
import { CollaborationCaret } from '@tiptap/extension-collaboration-caret';
import { StarterKit } from '@tiptap/starter-kit';
import * as Y from 'yjs';

/** What this page shows of a user, and what it puts in awareness as `user`. */
interface User {
  id: string;
  name: string;
  color: string;
}

/** The claims of a Concord token that this page uses. */
interface Claims {
  sub: string;
  name?: string;
  role?: string;
}

/** Roles that may change a report's content (SPEC, Roles); a commenter may write comments only. */
const contentWriters = new Set(['editor', 'admin']);

/** The awareness state Concord clients set (see the SPEC, Presence). */
interface PresenceState {
  user?: Partial<User>;
  focus?: { sectionId?: string };
  status?: string;
}

const form = element<HTMLFormElement>('connect-form');
const statusLine = element('status');
const meLine = element('me');
const savedLine = element('saved');
const presenceList = element('presence');
const messageLine = element('message');
const editorHost = element('editor');

let session: { provider: HocuspocusProvider; editor?: Editor } | undefined;

form.addEventListener('submit', (event) => {
  // Handled here, never submitted: the token must not travel in a URL.
  event.preventDefault();
  connect({
    url: element<HTMLInputElement>('url').value.trim(),
    token: element<HTMLInputElement>('token').value.trim(),
    documentName: element<HTMLInputElement>('document').value.trim(),
    sectionId: element<HTMLInputElement>('section').value.trim(),
  });
});

function connect(options: { url: string; token: string; documentName: string; sectionId: string }): void {
  closeSession();
  let claims: Claims;
  try {
    claims = readClaims(options.token);
  } catch (error) {
    showMessage(`That token cannot be read: ${(error as Error).message}`);
    return;
  }
  const user: User = { id: claims.sub, name: claims.name || claims.sub, color: colorFor(claims.sub) };
  meLine.textContent = user.name;

  const ydoc = new Y.Doc();
  const provider = new HocuspocusProvider({ url: options.url, name: options.documentName, token: options.token, document: ydoc });
  const current: { provider: HocuspocusProvider; editor?: Editor } = { provider };
  session = current;
  showStatus('connecting');
  // Present from the start, also if the section then cannot be opened (CollaborationCaret sets the same).
  provider.setAwarenessField('user', user);

  // Events of a session the user has since replaced must not touch the page.
  const replaced = () => session !== current;
  provider.on('status', ({ status }: { status: string }) => {
    if (!replaced()) showStatus(status);
  });
  provider.on('awarenessChange', () => {
    if (!replaced()) showPresence(provider);
  });
  provider.on('unsyncedChanges', ({ number }: { number: number }) => {
    if (!replaced()) showSaved(number);
  });
  // A refused token will not start working on a retry, so stop trying.
  provider.on('authenticationFailed', ({ reason }: { reason: string }) => {
    if (replaced()) return;
    closeSession();
    showMessage(`The server refused the token: ${reason}`);
  });
  // 'synced' fires again after every reconnect; the editor is made only once.
  provider.on('synced', () => {
    if (replaced()) return;
    current.editor ??= openSection(provider, ydoc, options.sectionId, user, contentWriters.has(claims.role ?? 'viewer'));
    showStatus('synced');
    showSaved(provider.unsyncedChanges);
  });
}

/**
 * Binds an editor to the section's body, creating the section if it is missing and the user may write.
 * `mayWrite` only spares the user edits that would be refused: the server enforces the role.
 */
function openSection(provider: HocuspocusProvider, ydoc: Y.Doc, sectionId: string, user: User, mayWrite: boolean): Editor | undefined {
  const sections = ydoc.getArray<Y.Map<unknown>>('sections');
  let section = sections.toArray().find((candidate) => candidate.get('id') === sectionId);
  if (!section) {
    if (!mayWrite) {
      showMessage(`This report has no section "${sectionId}", and this token may not add one.`);
      return undefined;
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
    return undefined;
  }

  provider.setAwarenessField('focus', { sectionId });
  provider.setAwarenessField('status', mayWrite ? 'editing' : 'viewing');
  showMessage('');
  return new Editor({
    element: editorHost,
    editable: mayWrite,
    extensions: [
      // Collaboration brings its own undo, which undoes only this user's changes;
      // StarterKit's would undo other people's edits too.
      StarterKit.configure({ undoRedo: false }),
      Collaboration.configure({ fragment: body }),
      // Also puts `user` into awareness, which is what the other pages label carets with.
      CollaborationCaret.configure({ provider, user }),
    ],
  });
}

function closeSession(): void {
  session?.editor?.destroy();
  session?.provider.destroy();
  session = undefined;
  presenceList.replaceChildren();
  showStatus('not connected');
  savedLine.textContent = '';
}

/** Lists everyone else with this document open, and which section they are in. */
function showPresence(provider: HocuspocusProvider): void {
  const awareness = provider.awareness;
  if (!awareness) return;
  const items: HTMLLIElement[] = [];
  for (const [clientId, state] of awareness.getStates() as Map<number, PresenceState>) {
    if (clientId === awareness.clientID || !state.user?.name) continue;
    const item = document.createElement('li');
    item.dataset.userId = state.user.id ?? '';
    // textContent, never innerHTML: names come from other people's browsers.
    item.textContent = state.focus?.sectionId ? `${state.user.name} (${state.status ?? 'viewing'} section ${state.focus.sectionId})` : state.user.name;
    items.push(item);
  }
  presenceList.replaceChildren(...items);
}

function showStatus(status: string): void {
  statusLine.textContent = status;
}

/** Concord acknowledges a change only once it is committed to Postgres, so 0 unacknowledged means saved. */
function showSaved(unacknowledged: number): void {
  savedLine.textContent = unacknowledged === 0 ? 'all changes saved' : `saving ${unacknowledged} change(s)`;
}

function showMessage(message: string): void {
  messageLine.textContent = message;
}

/**
 * The token's payload, unverified: only for showing who this page acts as and
 * what it offers. The server verifies the signature and enforces the role.
 */
function readClaims(token: string): Claims {
  const payload = token.split('.')[1];
  if (!payload) throw new Error('it is not a JWT');
  const binary = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
  const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)))) as Partial<Claims>;
  if (typeof claims.sub !== 'string') throw new Error('it has no "sub" claim');
  return {
    sub: claims.sub,
    name: typeof claims.name === 'string' ? claims.name : undefined,
    role: typeof claims.role === 'string' ? claims.role : undefined,
  };
}

/** Six-digit hex colours: the only kind the caret plugin accepts. */
const caretColors = ['#c92a2a', '#1971c2', '#2b8a3e', '#862e9c', '#d9480f', '#0b7285', '#a61e4d', '#5c940d'];

/** The same colour for a user on every page and every visit. */
function colorFor(userId: string): string {
  let hash = 0;
  for (const char of userId) hash = (hash * 31 + char.codePointAt(0)!) >>> 0;
  return caretColors[hash % caretColors.length]!;
}

function element<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`index.html has no #${id}`);
  return found as T;
}
