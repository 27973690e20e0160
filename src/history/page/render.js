/**
 * A version's JSON form (docs/documents.md) drawn as the
 * quote or report it is. Document content is text from users: it only ever
 * goes into the page as text nodes, never as HTML.
 */

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
 * @param {any} content a quote's JSON form
 */
function quote(content) {
  const header = content.quote;
  const lines = h('table', {}, [
    h('thead', {}, [h('tr', {}, ['#', 'id', 'SKU', 'description', 'quantity', 'unit price', 'discount %'].map((label) => h('th', {}, [label])))]),
    h(
      'tbody',
      {},
      content.lines.map((/** @type {any} */ line, /** @type {number} */ index) =>
        h('tr', {}, [
          h('td', { class: 'number' }, [String(index + 1)]),
          h('td', {}, [show(line.id)]),
          h('td', {}, [show(line.sku)]),
          h('td', {}, [show(line.description)]),
          h('td', { class: 'number' }, [show(line.quantity)]),
          h('td', { class: 'number' }, [show(line.unitPrice)]),
          h('td', { class: 'number' }, [show(line.discountPct)]),
        ]),
      ),
    ),
  ]);
  return [
    fields([
      ['Number', header.number],
      ['Title', header.title],
      ['Customer', [header.customerName, header.customerId].filter(Boolean).join(' · ')],
      ['Status', header.status],
      ['Currency', header.currency],
      ['Valid until', header.validUntil],
      ['Discount %', header.discountPct],
      ['Tax %', header.taxPct],
    ]),
    h('h3', {}, ['Notes']),
    h('div', { class: 'notes' }, [content.notes || '—']),
    h('h3', {}, [`Lines (${content.lines.length})`]),
    lines,
    h('p', { class: 'totals', 'data-testid': 'totals' }, [`Subtotal ${money(content.totals.subtotal)} · Total ${money(content.totals.total)} ${header.currency ?? ''}`]),
  ];
}

/**
 * @param {any} content a report's JSON form
 */
function report(content) {
  const header = content.report;
  return [
    fields([
      ['Title', header.title],
      ['Project', header.projectId],
      ['Period', header.period],
      ['Status', header.status],
    ]),
    ...content.sections.flatMap((/** @type {any} */ section) => [
      h('h3', {}, [`${show(section.title)} `, h('small', {}, [`(${show(section.id)})`])]),
      h('div', { class: 'section-text' }, [section.text ?? '(not rich text)']),
    ]),
  ];
}

/**
 * Draws `content` of a `kind` into `target`, with its comments.
 * @param {HTMLElement} target
 * @param {string} kind
 * @param {any} content
 */
export function renderVersion(target, kind, content) {
  const comments = content.comments.length
    ? [h('h3', {}, [`Comments (${content.comments.length})`]), h('ul', {}, content.comments.map((/** @type {any} */ comment) => h('li', {}, [`${show(comment.authorId)}: ${show(comment.body)}${comment.resolved ? ' (resolved)' : ''}`])))]
    : [];
  target.replaceChildren(...(kind === 'quote' ? quote(content) : report(content)), ...comments);
}
