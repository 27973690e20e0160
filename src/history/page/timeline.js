/**
 * The timeline: every update as a bar placed by when it arrived, as tall as
 * it was large, coloured by who sent it. Updates that fall on the same
 * couple of pixels share one bar (so a 100,000-update history draws as fast
 * as a short one); its tooltip says which seqs and who. The selected range
 * (compared-with to shown version) is shaded; clicking picks a version.
 *
 * @typedef {{ seq: number, receivedAt: string, userId: string, origin: string, bytes: number }} Update
 */

import { h } from './render.js';

const SVG = 'http://www.w3.org/2000/svg';
const HEIGHT = 140;
const AXIS = 16;
const PALETTE = ['#0969da', '#cf222e', '#1a7f37', '#8250df', '#bf8700', '#d2367a', '#0a7e8c', '#57606a'];

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attributes
 * @param {string} [title]
 */
function svg(tag, attributes, title) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (title) {
    const tooltip = document.createElementNS(SVG, 'title');
    tooltip.textContent = title;
    element.append(tooltip);
  }
  return element;
}

/** A colour per user, in the order they first appear. @param {Update[]} updates */
export function userColours(updates) {
  /** @type {Map<string, string>} */
  const colours = new Map();
  for (const { userId } of updates) if (!colours.has(userId)) colours.set(userId, PALETTE[colours.size % PALETTE.length] ?? '#57606a');
  return colours;
}

/**
 * @param {SVGSVGElement} target
 * @param {Update[]} updates
 * @param {{ base: number, version: number, onPick(seq: number): void }} selection
 */
export function drawTimeline(target, updates, selection) {
  const width = Math.max(200, Math.round(target.getBoundingClientRect().width));
  target.setAttribute('viewBox', `0 0 ${width} ${HEIGHT}`);
  target.replaceChildren();
  if (updates.length === 0) return;
  const colours = userColours(updates);
  const times = updates.map((update) => Date.parse(update.receivedAt));
  const first = times.reduce((a, b) => Math.min(a, b));
  const span = Math.max(1, times.reduce((a, b) => Math.max(a, b)) - first);
  // Bars 2 px wide for long histories, up to 10 px for short ones.
  const columnPx = Math.max(2, Math.min(10, Math.floor(width / (updates.length * 3))));
  const columns = Math.floor(width / columnPx);
  const columnOf = (/** @type {number} */ time) => Math.min(columns - 1, Math.floor(((time - first) / span) * (columns - 1)));
  const xOf = (/** @type {number} */ seq) => {
    const index = updates.findIndex((update) => update.seq >= seq);
    return columnOf(times[index === -1 ? times.length - 1 : index] ?? first) * columnPx;
  };

  /** @typedef {{ bytes: number, seqs: number[], users: Map<string, number> }} Bar */
  /** @type {Map<number, Bar>} */
  const bars = new Map();
  updates.forEach((update, index) => {
    const column = columnOf(times[index] ?? first);
    /** @type {Bar} */
    const bar = bars.get(column) ?? { bytes: 0, seqs: [], users: new Map() };
    bar.bytes += update.bytes;
    bar.seqs.push(update.seq);
    bar.users.set(update.userId, (bar.users.get(update.userId) ?? 0) + 1);
    bars.set(column, bar);
  });
  const tallest = Math.sqrt([...bars.values()].reduce((most, bar) => Math.max(most, bar.bytes), 1));
  const plot = HEIGHT - AXIS;

  const from = xOf(selection.base + 1);
  const to = xOf(selection.version);
  if (selection.version > selection.base) target.append(svg('rect', { class: 'range', x: from, y: 0, width: to - from + columnPx, height: plot }));
  target.append(svg('line', { class: 'cursor', x1: to + columnPx / 2, x2: to + columnPx / 2, y1: 0, y2: plot }));
  for (const [column, bar] of bars) {
    const height = Math.max(2, (Math.sqrt(bar.bytes) / tallest) * (plot - 4));
    const [author] = [...bar.users].sort((a, b) => b[1] - a[1])[0] ?? ['?'];
    const seqs = bar.seqs.length === 1 ? `#${bar.seqs[0]}` : `#${bar.seqs[0]}–${bar.seqs.at(-1)} (${bar.seqs.length} updates)`;
    const who = [...bar.users].map(([user, count]) => (bar.users.size > 1 || count > 1 ? `${user} ×${count}` : user)).join(', ');
    target.append(svg('rect', { class: 'bar', x: column * columnPx, y: plot - height, width: Math.max(2, columnPx - 1), height, fill: colours.get(author) ?? '#57606a', 'data-seqs': bar.seqs.join(' ') }, `${seqs} · ${who} · ${bar.bytes} bytes`));
  }
  const label = (/** @type {number} */ time) => new Date(time).toLocaleString();
  const axis = svg('text', { class: 'axis', x: 2, y: HEIGHT - 4 });
  axis.textContent = label(first);
  const end = svg('text', { class: 'axis', x: width - 2, y: HEIGHT - 4, 'text-anchor': 'end' });
  end.textContent = label(first + span);
  target.append(axis, end);

  target.onclick = (event) => {
    const x = event.clientX - target.getBoundingClientRect().left;
    const column = Math.floor(x / columnPx);
    let nearest = updates[0];
    for (const [index, update] of updates.entries()) if (columnOf(times[index] ?? first) <= column) nearest = update;
    if (nearest) selection.onPick(nearest.seq);
  };
}

/**
 * @param {HTMLElement} target
 * @param {Update[]} updates
 */
export function drawLegend(target, updates) {
  const colours = userColours(updates);
  const counts = new Map();
  for (const { userId } of updates) counts.set(userId, (counts.get(userId) ?? 0) + 1);
  target.replaceChildren(
    ...[...colours].map(([user, colour]) => {
      const swatch = h('span', { class: 'swatch' });
      // Set through the CSSOM: the page's Content-Security-Policy forbids inline style attributes.
      swatch.style.background = colour;
      return h('span', {}, [swatch, `${user} (${counts.get(user)})`]);
    }),
  );
}
