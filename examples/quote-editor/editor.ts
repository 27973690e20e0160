/**
 * The browser side of the quote editor example: a whole Concord quote (docs/documents.md)
 * in plain DOM. Header fields, lines, notes and comments are read and
 * written straight on the Yjs document; totals come from the server's own code
 * (src/documents/quote.ts through the projection's DocumentTracker, bundled for
 * the browser), so the page shows what the `quotes` table will hold. The
 * connection, role and refusal handling is examples/shared/session.ts.
 *
 * The page keeps to the server's rules where it can tell: a quote whose status
 * freezes it (the kind's workflow) takes only comments and, from an admin, a
 * reopening; a line someone else holds a lock on is not editable; the status
 * offers only the changes the workflow allows; numbers out of range are not
 * sent. What it cannot tell (field permissions, a lock taken a moment before)
 * the server refuses, and the session says so.
 *
 * Header fields and line cells are plain values in Y.Maps: the last write wins,
 * so an input is written when it is committed (change: Enter or leaving it),
 * not per keystroke. Notes are a Y.Text, edited character-wise.
 */
import * as Y from 'yjs';
import type { Fields } from '../../src/documents/layout.ts';
import type { Json } from '../../src/json.ts';
import { lineTotal } from '../../src/documents/priced-lines.ts';
import { quote } from '../../src/documents/quote.ts';
import { DocumentTracker } from '../../src/projection/tracker.ts';
import { describeRefusal, DocumentSession, element, othersPresent, showMessage, type Replica, type Role } from '../shared/session.ts';
import { Locks } from './locks.ts';
import { bindText } from './text-binding.ts';

/** The quote's JSON form (docs/documents.md). */
interface QuoteJson {
  quote: Fields;
  notes: string;
  lines: Fields[];
  comments: Fields[];
  totals: { subtotal: number | null; total: number | null };
}

/** How a header field or line cell turns into a value; null clears it. */
type Parse = (input: HTMLInputElement | HTMLSelectElement) => Json;

const text: Parse = (input) => input.value;
const orNull: Parse = (input) => input.value || null;
const currency: Parse = (input) => input.value.toUpperCase() || null;
/** Amounts may be empty (null); percentages default to 0. */
const amount: Parse = (input) => (input.value === '' ? null : Number(input.value));
const percentage: Parse = (input) => (input.value === '' ? 0 : Number(input.value));

const headerFields: Record<string, Parse> = {
  number: text,
  title: text,
  customerId: text,
  customerName: text,
  status: text,
  currency,
  validUntil: orNull,
  discountPct: percentage,
  taxPct: percentage,
};
const lineFields: Record<string, Parse> = { sku: text, description: text, quantity: amount, unitPrice: amount, discountPct: percentage };

const form = element<HTMLFormElement>('connect-form');
const main = element('quote');
const header = element('header');
const lineRows = element<HTMLTableSectionElement>('lines');
const lineTemplate = element<HTMLTemplateElement>('line-row');
const notes = element<HTMLTextAreaElement>('notes');
const threads = element('threads');
const commentBody = element<HTMLTextAreaElement>('comment-body');
const addComment = element<HTMLButtonElement>('add-comment');

const workflow = quote.workflow!;

// Each header field gets a place for who is in it, for its lock and a button for its comments.
for (const field of document.querySelectorAll<HTMLElement>('.field[data-field]')) {
  const who = document.createElement('span');
  who.className = 'who';
  const lock = document.createElement('span');
  lock.className = 'lock';
  const comments = document.createElement('button');
  comments.type = 'button';
  comments.className = 'comment-on';
  comments.dataset.anchor = `field:${field.dataset.field}`;
  field.append(who, lock, comments);
}

/** The quote the page is bound to: null between sessions and while a replica loads. */
let bound: { replica: Replica; session: DocumentSession; quoteId: string; locks: Locks; rows: Map<Y.Map<unknown>, HTMLTableRowElement> } | null = null;
let session: DocumentSession | undefined;
/** Inputs with typing not yet committed: a remote change does not overwrite them. */
const typing = new WeakSet<Element>();
/** The anchor whose comments are shown (null: the quote as a whole), and the comment being answered. */
let commentAnchor: string | null = null;
let replyTo: Fields | null = null;

form.addEventListener('submit', (event) => {
  // Handled here, never submitted: the token must not travel in a URL.
  event.preventDefault();
  const documentName = element<HTMLInputElement>('document').value.trim();
  // Locks are the server's to tell, also before a replica is bound: kept per session.
  let locks: Locks | undefined;
  session = DocumentSession.open({
    url: element<HTMLInputElement>('url').value.trim(),
    token: element<HTMLInputElement>('token').value.trim(),
    documentName,
    describeMode,
    // Bound once synced, long after `locks` is set below.
    bind: (replica, opened) => bind(replica, opened, documentName.split('/')[2] ?? '', locks!),
    onPresence: () => renderPresence(),
    onMessage: (message) => locks?.receive(message),
    claimRefusal: (refusal) => locks?.claim(refusal) ?? false,
  });
  if (session) {
    locks = new Locks(session.user.id, renderQuote, (refusal) => showMessage(`The server refused the lock on ${refusal.target}: ${describeRefusal(refusal)}.`));
  }
});
element('reload').addEventListener('click', () => session?.reload());

function describeMode(role: Role): string {
  if (role === 'editor' || role === 'admin') return `Editing as ${role}.`;
  if (role === 'commenter') return 'Comments only: your role (commenter) may comment, reply and resolve; the quote itself is read-only here.';
  return `Read-only: your role (${role}) may read this quote but not change it or comment.`;
}

function bind(replica: Replica, opened: DocumentSession, quoteId: string, locks: Locks): () => void {
  const { doc } = replica;
  bound = { replica, session: opened, quoteId, locks, rows: new Map() };
  commentBody.disabled = addComment.disabled = !opened.mayComment;
  const unbindNotes = bindText(notes, doc.getText('notes'), opened.mayEditContent);
  locks.attach(replica.provider);
  opened.setPresence('status', 'viewing');
  const render = () => renderQuote();
  doc.on('update', render);
  main.hidden = false;
  render();
  return () => {
    doc.off('update', render);
    locks.detach();
    unbindNotes();
    lineRows.replaceChildren();
    main.hidden = true;
    bound = null;
  };
}

// ---- Writing: each handler changes the document; rendering follows from its update.

header.addEventListener('change', (event) => {
  const input = event.target as HTMLInputElement | HTMLSelectElement;
  const field = input.closest<HTMLElement>('.field')?.dataset.field;
  const parse = field && headerFields[field];
  if (!bound || !parse) return;
  commit(input, parse, bound.replica.doc.getMap('quote'), field);
});

lineRows.addEventListener('change', (event) => {
  const input = event.target as HTMLInputElement;
  const field = input.dataset.lineField;
  const line = lineOf(input);
  if (!field || !line) return;
  commit(input, lineFields[field]!, line, field);
});

/** Writes a committed input into `map`, unless the browser finds it invalid (then says why and writes nothing). */
function commit(input: HTMLInputElement | HTMLSelectElement, parse: Parse, map: Y.Map<unknown>, field: string): void {
  typing.delete(input);
  if (input instanceof HTMLInputElement && input.id === 'field-currency') input.value = input.value.toUpperCase();
  if (!input.checkValidity()) {
    showMessage(`Not saved: ${field} ${input.validationMessage.toLowerCase()}`);
    return;
  }
  const value = parse(input);
  if (map.get(field) !== value) map.set(field, value);
  renderQuote();
}

for (const area of [header, lineRows]) {
  area.addEventListener('input', (event) => typing.add(event.target as Element));
  area.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && event.target instanceof HTMLInputElement) event.target.dispatchEvent(new Event('change', { bubbles: true }));
  });
}

lineRows.addEventListener('click', (event) => {
  const button = (event.target as Element).closest('button');
  const line = button && lineOf(button);
  if (!bound || !line) return;
  const lines = bound.replica.doc.getArray<Y.Map<unknown>>('lines');
  const index = lines.toArray().indexOf(line);
  if (button.classList.contains('remove-line')) lines.delete(index, 1);
  else if (button.classList.contains('move-up')) moveLine(lines, index, -1);
  else if (button.classList.contains('move-down')) moveLine(lines, index, 1);
});

element('add-line').addEventListener('click', () => {
  if (!bound) return;
  const line = new Y.Map<unknown>([
    ['id', newId('l')],
    ['sku', ''],
    ['description', ''],
    ['quantity', 1],
    ['unitPrice', 0],
    ['discountPct', 0],
  ]);
  bound.replica.doc.getArray('lines').push([line]);
});

// An admin reopens a frozen quote: back to draft (only admins may leave a frozen status).
element('reopen').addEventListener('click', () => bound?.replica.doc.getMap('quote').set(workflow.field, 'draft'));

/**
 * Yjs has no move: the line is removed and a copy (same id, same fields) is
 * inserted one line up or down, in one transaction. A concurrent edit of the
 * moved line by someone else is lost with the removed original.
 */
function moveLine(lines: Y.Array<Y.Map<unknown>>, index: number, step: -1 | 1): void {
  const items = lines.toArray();
  let target = index + step;
  while (target >= 0 && target < items.length && !(items[target] instanceof Y.Map)) target += step;
  if (target < 0 || target >= items.length) return;
  lines.doc!.transact(() => {
    const copy = new Y.Map<unknown>(Object.entries(items[index]!.toJSON()));
    lines.delete(index, 1);
    lines.insert(target, [copy]);
  });
}

function lineOf(inside: Element): Y.Map<unknown> | undefined {
  const row = inside.closest('tr');
  for (const [map, candidate] of bound?.rows ?? []) if (candidate === row) return map;
  return undefined;
}

/** A short random id, unique enough within one quote. */
function newId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `${prefix}-${Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')}`;
}

// ---- Comments: threads per anchor (`field:<key>`, `line:<id>`, or none: the quote).

document.addEventListener('click', (event) => {
  const button = (event.target as Element).closest<HTMLButtonElement>('.comment-on');
  if (!button) return;
  commentAnchor = button.dataset.anchor ?? null;
  replyTo = null;
  renderQuote();
});

addComment.addEventListener('click', () => {
  const body = commentBody.value.trim();
  if (!bound || !body) return;
  const comment = new Y.Map<unknown>([
    ['id', newId('c')],
    ['authorId', bound.session.user.id],
    ['body', body],
    ['createdAt', new Date().toISOString()],
    ['parentId', replyTo ? (replyTo.id as string) : null],
    ['anchor', replyTo ? replyTo.anchor : commentAnchor],
    ['resolved', false],
    // `@user-id` in the text notifies that user: one comment.mentioned event each (docs/events.md).
    ['mentions', mentionedIn(body)],
  ]);
  bound.replica.doc.getArray('comments').push([comment]);
  commentBody.value = '';
  replyTo = null;
});

element('cancel-reply').addEventListener('click', () => {
  replyTo = null;
  renderQuote();
});

threads.addEventListener('click', (event) => {
  const button = (event.target as Element).closest<HTMLButtonElement>('button');
  const id = button?.closest<HTMLElement>('li')?.dataset.commentId;
  if (!bound || !button || !id) return;
  const comments = bound.replica.doc.getArray<Y.Map<unknown>>('comments');
  const comment = comments.toArray().find((candidate) => candidate instanceof Y.Map && candidate.get('id') === id);
  if (!comment) return;
  if (button.classList.contains('resolve')) comment.set('resolved', comment.get('resolved') !== true);
  else if (button.classList.contains('reply')) {
    replyTo = comment.toJSON() as Fields;
    renderQuote();
    commentBody.focus();
  }
});

// ---- Presence: which field or line each user is in (docs/several-instances.md, Presence).

main.addEventListener('focusin', (event) => {
  const target = event.target as HTMLElement;
  if (!bound) return;
  const lineId = target.dataset.lineField ? target.closest<HTMLElement>('tr')?.dataset.lineId : undefined;
  // The line the user is in is locked for them while they stay in it (an input of it, not its buttons).
  bound.locks.want(lineId && bound.session.mayEditContent ? `line:${lineId}` : null);
  if (target.closest('.comment-on')) return;
  const field = target.dataset.lineField ?? target.closest<HTMLElement>('.field')?.dataset.field;
  if (!field) return;
  bound.session.setPresence('focus', lineId ? { lineId, field } : { field });
  bound.session.setPresence('status', bound.session.mayEditContent ? 'editing' : 'viewing');
});
main.addEventListener('focusout', (event) => {
  if (!bound || main.contains(event.relatedTarget as Node | null)) return;
  bound.locks.want(null);
  bound.session.setPresence('focus', null);
  bound.session.setPresence('status', 'viewing');
});

// ---- Rendering: the whole quote from the document, as the server reads it.

function renderQuote(): void {
  if (!bound) return;
  const { replica, quoteId } = bound;
  const content = quote.render(new DocumentTracker(quote, replica.doc, quoteId)) as unknown as QuoteJson;
  const mayEdit = renderRules(String(content.quote[workflow.field]));
  for (const field of Object.keys(headerFields)) show(element<HTMLInputElement>(`field-${field}`), content.quote[field]);
  renderLines(replica.doc.getArray('lines'), content.lines, mayEdit);
  const money = (value: number | null) => (value === null ? '-' : value.toFixed(2));
  element('subtotal').textContent = money(content.totals.subtotal);
  element('total').textContent = money(content.totals.total);
  element('total-currency').textContent = String(content.quote.currency ?? 'no currency');
  renderComments(content.comments);
  renderPresence();
}

/** Shows a value in an input, unless the user is typing there (typing into an input since disabled is dropped). */
function show(input: HTMLInputElement | HTMLSelectElement, value: Json | undefined): void {
  const shown = value === null || value === undefined ? '' : String(value);
  if (input.disabled) typing.delete(input);
  if (!typing.has(input) && input.value !== shown) input.value = shown;
}

/**
 * What the user may change now, by their role, the quote's status and the
 * locks others hold: a frozen quote takes comments only (an admin may reopen
 * it); the status offers only the changes the workflow allows; a field
 * another user has locked says by whom and takes nothing (lines: renderLineRules).
 * Returns whether the quote's content takes changes from this user.
 */
function renderRules(status: string): boolean {
  const { session: opened, locks } = bound!;
  const frozen = workflow.frozen.has(status);
  const isAdmin = opened.claims.role === 'admin';
  const mayEdit = opened.mayEditContent && !frozen;

  const banner = element('frozen');
  banner.hidden = !frozen;
  element('frozen-text').textContent = frozen ? `${status[0]!.toUpperCase()}${status.slice(1)}: this quote is frozen; comments stay open; an admin can reopen it.` : '';
  element('reopen').hidden = !(frozen && isAdmin && opened.mayEditContent);

  for (const field of main.querySelectorAll<HTMLElement>('.field[data-field]')) {
    const key = field.dataset.field!;
    const target = `field:${key}`;
    // Leaving a frozen status is for admins only.
    const allowed = key === workflow.field ? opened.mayEditContent && (!frozen || isAdmin) : mayEdit;
    const blocked = !allowed || locks.heldByOther(target) !== undefined;
    const control = field.querySelector<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>('input, select, textarea')!;
    if (control instanceof HTMLTextAreaElement) control.readOnly = blocked;
    else control.disabled = blocked;
    showLock(field.querySelector('.lock')!, target);
  }
  const transitions = workflow.transitions[status] ?? [];
  for (const option of element<HTMLSelectElement>(`field-${workflow.field}`).options) option.disabled = option.value !== status && !transitions.includes(option.value);
  element<HTMLButtonElement>('add-line').disabled = !mayEdit;
  return mayEdit;
}

/** A line's row takes changes if the quote does (`mayEdit`) and nobody else holds the line's lock. */
function renderLineRules(row: HTMLTableRowElement, mayEdit: boolean): void {
  const target = `line:${row.dataset.lineId}`;
  const lockedByOther = bound!.locks.heldByOther(target) !== undefined;
  row.classList.toggle('locked', lockedByOther);
  for (const control of row.querySelectorAll<HTMLInputElement | HTMLButtonElement>('input, .move-up, .move-down, .remove-line')) control.disabled = !mayEdit || lockedByOther;
  showLock(row.querySelector('.lock')!, target);
}

/** Who holds the lock on `target`: another user (by name), this user, or nobody (empty). */
function showLock(place: Element, target: string): void {
  const other = bound!.locks.heldByOther(target);
  place.textContent = other ? `locked by ${other.name || other.userId}` : bound!.locks.heldByMe(target) ? 'locked by you' : '';
  place.classList.toggle('other', other !== undefined);
}

/** One row per line Y.Map, kept across renders so focus and typing survive; `lines` are their fields in the same order. */
function renderLines(array: Y.Array<unknown>, lines: Fields[], mayEdit: boolean): void {
  const { rows } = bound!;
  const maps = array.toArray().filter((value): value is Y.Map<unknown> => value instanceof Y.Map);
  for (const [map, row] of rows) {
    if (maps.includes(map)) continue;
    row.remove();
    rows.delete(map);
  }
  maps.forEach((map, index) => {
    const fields = lines[index]!;
    let row = rows.get(map);
    if (!row) {
      row = lineTemplate.content.firstElementChild!.cloneNode(true) as HTMLTableRowElement;
      rows.set(map, row);
    }
    row.dataset.lineId = String(fields.id ?? '');
    renderLineRules(row, mayEdit);
    for (const input of row.querySelectorAll<HTMLInputElement>('input[data-line-field]')) show(input, fields[input.dataset.lineField!]);
    row.querySelector('.line-total')!.textContent = lineTotal(fields)?.toFixed(2) ?? '-';
    row.querySelector<HTMLElement>('.comment-on')!.dataset.anchor = `line:${fields.id}`;
    // Moving the row that holds the focus would blur it: only rows out of place move.
    if (lineRows.children[index] !== row) lineRows.insertBefore(row, lineRows.children[index] ?? null);
  });
}

/** The distinct user ids written as `@user-id` in a comment's text. */
function mentionedIn(body: string): string[] {
  return [...new Set([...body.matchAll(/(?:^|\s)@([A-Za-z0-9_-]{1,64})/g)].map((match) => match[1]!))];
}

function renderComments(comments: Fields[]): void {
  const mayComment = bound!.session.mayComment;
  // Badges: open threads per anchor.
  for (const button of document.querySelectorAll<HTMLButtonElement>('.comment-on')) {
    const open = comments.filter((comment) => comment.anchor === button.dataset.anchor && comment.parentId === null && !comment.resolved).length;
    button.textContent = open > 0 ? `Comments (${open})` : 'Comment';
    button.classList.toggle('has-comments', open > 0);
    button.classList.toggle('selected', button.dataset.anchor === commentAnchor);
  }
  element('comment-target').textContent = commentAnchor?.replace(':', ' ') ?? 'the quote';
  const thread = (parentId: string | null): HTMLLIElement[] =>
    comments
      .filter((comment) => comment.parentId === parentId && (parentId !== null || comment.anchor === commentAnchor))
      .sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt)))
      .map((comment) => {
        const item = document.createElement('li');
        item.dataset.commentId = String(comment.id);
        item.classList.toggle('resolved', comment.resolved === true);
        const words = document.createElement('span');
        words.className = 'comment-text';
        // textContent, never innerHTML: comments come from other people's browsers.
        const mentions = Array.isArray(comment.mentions) && comment.mentions.length > 0 ? ` (notifies ${comment.mentions.map((id) => nameOf(String(id))).join(', ')})` : '';
        words.textContent = `${nameOf(String(comment.authorId))}: ${comment.body}${mentions}${comment.resolved ? ' (resolved)' : ''}`;
        item.append(words, button('reply', 'Reply', !mayComment), button('resolve', comment.resolved ? 'Reopen' : 'Resolve', !mayComment));
        const replies = thread(String(comment.id));
        if (replies.length > 0) {
          const list = document.createElement('ul');
          list.append(...replies);
          item.append(list);
        }
        return item;
      });
  threads.replaceChildren(...thread(null));
  element('replying').hidden = replyTo === null;
  element('reply-to').textContent = replyTo ? `${nameOf(String(replyTo.authorId))}: ${replyTo.body}` : '';
  addComment.textContent = replyTo ? 'Reply' : 'Add comment';
}

function button(className: string, label: string, disabled: boolean): HTMLButtonElement {
  const made = document.createElement('button');
  made.type = 'button';
  made.className = className;
  made.textContent = label;
  made.disabled = disabled;
  return made;
}

/** A user's name if this page has seen it (theirs in awareness, or this user's own), else their id. */
function nameOf(userId: string): string {
  if (!bound) return userId;
  if (userId === bound.session.user.id) return bound.session.user.name;
  return othersPresent(bound.replica.provider).find(({ state }) => state.user.id === userId)?.state.user.name ?? userId;
}

/** Who is where: a name tag on the field or line each other user is in, and the list at the top. */
function renderPresence(): void {
  if (!bound) return;
  for (const who of main.querySelectorAll('.who')) who.replaceChildren();
  // A stopped replica hears nobody any more: what its awareness last held is stale.
  const others = bound.session.isStopped ? [] : othersPresent(bound.replica.provider);
  const items = others.map(({ state }) => {
    const { user, focus } = state;
    let place = '';
    let where: Element | null = null;
    if (focus?.lineId) {
      place = ` line ${focus.lineId} ${focus.field ?? ''}`.trimEnd();
      where = [...lineRows.rows].find((row) => row.dataset.lineId === focus.lineId)?.querySelector('.who') ?? null;
    } else if (focus?.field) {
      place = ` ${focus.field}`;
      where = main.querySelector(`.field[data-field="${CSS.escape(focus.field)}"] .who`);
    }
    if (where) {
      const tag = document.createElement('span');
      // Only a plain colour from another browser reaches the style.
      tag.style.background = /^#[0-9a-f]{6}$/i.test(user.color ?? '') ? user.color! : '#555';
      tag.textContent = focus?.lineId && focus.field ? `${user.name}: ${focus.field}` : user.name;
      where.append(tag);
    }
    const item = document.createElement('li');
    item.dataset.userId = user.id ?? '';
    item.textContent = `${user.name} (${state.status ?? 'viewing'}${place})`;
    return item;
  });
  element('presence').replaceChildren(...items);
}
