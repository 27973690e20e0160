/**
 * What differs between two versions' JSON forms, for either kind: the header
 * object field by field, text fields whole, and member arrays (lines,
 * sections, comments) by id. A section's rich-text `body` is compared through
 * its plain `text`, which says the same in words.
 *
 * @typedef {{ change: 'added' | 'removed' | 'changed', what: string, from?: unknown, to?: unknown }} Difference
 */

/**
 * @param {any} before
 * @param {any} after
 * @returns {Difference[]}
 */
export function differences(before, after) {
  /** @type {Difference[]} */
  const found = [];
  for (const key of Object.keys(after)) {
    const [was, is] = [before[key], after[key]];
    if (Array.isArray(is)) found.push(...members(key, was ?? [], is));
    else if (is !== null && typeof is === 'object') found.push(...fieldsOf(key, was ?? {}, is));
    else if (!same(was, is)) found.push({ change: 'changed', what: key, from: was, to: is });
  }
  return found;
}

/**
 * @param {string} prefix
 * @param {Record<string, unknown>} was
 * @param {Record<string, unknown>} is
 * @returns {Difference[]}
 */
function fieldsOf(prefix, was, is) {
  return Object.keys({ ...was, ...is })
    .filter((field) => field !== 'body' && !same(was[field], is[field]))
    .map((field) => ({ change: 'changed', what: `${prefix}.${field}`, from: was[field], to: is[field] }));
}

/**
 * @param {string} collection
 * @param {any[]} was
 * @param {any[]} is
 * @returns {Difference[]}
 */
function members(collection, was, is) {
  const before = new Map(was.map((member) => [member.id, member]));
  const after = new Map(is.map((member) => [member.id, member]));
  /** @type {Difference[]} */
  const found = [];
  for (const [id, member] of after) {
    const previous = before.get(id);
    if (!previous) found.push({ change: 'added', what: `${collection} ${id}`, to: summary(member) });
    else found.push(...fieldsOf(`${collection} ${id}`, previous, member));
  }
  for (const [id, member] of before) if (!after.has(id)) found.push({ change: 'removed', what: `${collection} ${id}`, from: summary(member) });
  const order = (/** @type {any[]} */ list) => list.map((member) => member.id).filter((id) => before.has(id) && after.has(id));
  if (!same(order(was), order(is))) found.push({ change: 'changed', what: `${collection} order`, from: order(was).join(', '), to: order(is).join(', ') });
  return found;
}

/** @param {Record<string, unknown>} member */
function summary(member) {
  return Object.entries(member)
    .filter(([field, value]) => field !== 'id' && field !== 'body' && value !== null && value !== '')
    .map(([field, value]) => `${field} ${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(', ');
}

/**
 * @param {unknown} a
 * @param {unknown} b
 */
function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * One difference in words: `lines l2.quantity: 2 → 3`, `lines l9: added (sku P-1, quantity 2)`.
 * @param {Difference} difference
 * @param {(value: unknown) => string} show
 */
export function describe(difference, show) {
  if (difference.change === 'added') return `${difference.what}: added (${difference.to})`;
  if (difference.change === 'removed') return `${difference.what}: removed (${difference.from})`;
  return `${difference.what}: ${show(difference.from)} → ${show(difference.to)}`;
}
