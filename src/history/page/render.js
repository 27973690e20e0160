/**
 * A version's JSON form (docs/documents.md) drawn from its kind's layout
 * (`kinds.json`, served from the kind registry): header fields, texts, each
 * collection as a table (or, with rich text, its plain text), totals, comments.
 * Document content is text from users: it only ever goes into the page as
 * text nodes, never as HTML.
 */

/**
 * @typedef {{ key: string, fields: string[], richText: Record<string, string> }} CollectionOutline
 * @typedef {{ header: { key: string, fields: string[] }, texts: string[], collections: CollectionOutline[] }} KindOutline
 */

/** @type {Record<string, KindOutline>} */
const layouts = await (await fetch(new URL('kinds.json', import.meta.url))).json();

/**
 * An element with attributes and children (strings become text nodes).
 * @param {string} tag
 * @param {Record<string, string>} [attributes]
 * @param {Array<Node | string | null | undefined>} [children]
 * @returns {HTMLElement}
 */
export function h(tag, attributes = {}, children = []) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children) if (child !== null && child !== undefined) element.append(child);
  return element;
}

/** @param {unknown} value */
export function show(value) {
  if (value === null || value === undefined || value === '') return '—';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * @param {Array<[string, unknown]>} entries
 */
function fields(entries) {
  return h('dl', {}, entries.flatMap(([label, value]) => [h('dt', {}, [label]), h('dd', {}, [show(value)])]));
}

/** @param {number | null} amount */
function money(amount) {
  return amount === null ? 'unknown' : amount.toFixed(2);
}

/**
 * A layout key as a label: `validUntil` → `Valid until`, `discountPct` → `Discount %`.
 * @param {string} key
 */
function label(key) {
  const words = key.replace(/Pct$/, ' %').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * A collection's members as a table, one column per field.
 * @param {CollectionOutline} collection
 * @param {any[]} members
 */
function table(collection, members) {
  return h('table', {}, [
    h('thead', {}, [h('tr', {}, ['#', ...collection.fields].map((key) => h('th', {}, [key === '#' ? key : label(key)])))]),
    h(
      'tbody',
      {},
      members.map((member, index) =>
        h('tr', {}, [h('td', { class: 'number' }, [String(index + 1)]), ...collection.fields.map((key) => h('td', typeof member[key] === 'number' ? { class: 'number' } : {}, [show(member[key])]))]),
      ),
    ),
  ]);
}

/**
 * Members with rich text: each one's plain fields, then the plain text of each rich-text field.
 * @param {CollectionOutline} collection
 * @param {any[]} members
 */
function richMembers(collection, members) {
  const richFields = new Set(Object.entries(collection.richText).flat());
  return members.flatMap((member) => [
    h('h3', {}, [collection.fields.filter((key) => !richFields.has(key)).map((key) => show(member[key])).join(' · ')]),
    ...Object.values(collection.richText).map((textField) => h('div', { class: 'section-text' }, [member[textField] ?? '(not rich text)'])),
  ]);
}

/** @param {any[]} comments */
function commentList(comments) {
  if (!comments.length) return [];
  return [
    h('h3', {}, [`Comments (${comments.length})`]),
    h('ul', {}, comments.map((comment) => h('li', {}, [`${show(comment.authorId)}: ${show(comment.body)}${comment.resolved ? ' (resolved)' : ''}`]))),
  ];
}

/**
 * Draws `content` of a `kind` into `target`.
 * @param {HTMLElement} target
 * @param {string} kind
 * @param {any} content
 */
export function renderVersion(target, kind, content) {
  const layout = layouts[kind];
  if (!layout) throw new Error(`the page knows no kind "${kind}"`);
  const header = content[layout.header.key];
  const parts = [fields(layout.header.fields.map((key) => [label(key), header[key]]))];
  for (const key of layout.texts) parts.push(h('h3', {}, [label(key)]), h('div', { class: 'notes' }, [content[key] || '—']));
  for (const collection of layout.collections) {
    const members = content[collection.key];
    if (collection.key === 'comments') continue;
    parts.push(h('h3', {}, [`${label(collection.key)} (${members.length})`]));
    parts.push(...(Object.keys(collection.richText).length ? richMembers(collection, members) : [table(collection, members)]));
  }
  if (content.totals) {
    const amounts = Object.entries(content.totals).map(([key, amount]) => `${label(key)} ${money(amount)}`);
    parts.push(h('p', { class: 'totals', 'data-testid': 'totals' }, [`${amounts.join(' · ')} ${header.currency ?? ''}`.trim()]));
  }
  target.replaceChildren(...parts, ...commentList(content.comments));
}
