/**
 * The history page: sign in with an admin token, pick a document, see its
 * updates on a timeline, slide through its versions (drawn from their kind's
 * layout), read the field changes and the differences between
 * two versions, and restore one. Everything comes from the admin API.
 */
import { allPages, ApiError, call, forgetToken, hasToken, setToken } from './api.js';
import { describe, differences } from './diff.js';
import { h, renderVersion, show } from './render.js';
import { drawLegend, drawTimeline } from './timeline.js';

/** The most recent updates the page loads (older versions stay reachable through the API). */
const MAX_UPDATES = 20_000;
const CHANGES_SHOWN = 200;

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
function element(id) {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the page has no #${id}`);
  return /** @type {T} */ (found);
}

const signInForm = /** @type {HTMLFormElement} */ (element('sign-in'));
const tokenInput = /** @type {HTMLInputElement} */ (element('token'));
const signOutButton = element('sign-out');
const workspace = element('workspace');
const message = element('message');
const picker = /** @type {HTMLSelectElement} */ (element('document'));
const summary = element('summary');
const timeline = /** @type {SVGSVGElement} */ (/** @type {unknown} */ (element('timeline')));
const legend = element('legend');
const versionSlider = /** @type {HTMLInputElement} */ (element('version'));
const baseSlider = /** @type {HTMLInputElement} */ (element('base'));
const rendered = element('rendered');
const diffList = element('diff');
const changesBody = /** @type {HTMLTableSectionElement} */ (element('changes').querySelector('tbody'));
const restoreButton = element('restore');
const confirmBox = element('confirm');

/**
 * @typedef {{ name: string, kind: string, id: string, version: number }} DocumentEntry
 * @typedef {{ latest: number, exactFrom: number, exactCheckpoints: number[], updates: import('./timeline.js').Update[], from: number }} Loaded
 */

/** @type {{ documents: DocumentEntry[], document: DocumentEntry | null, loaded: Loaded | null, versions: Map<string, any>, request: number, load: number }} */
const state = { documents: [], document: null, loaded: null, versions: new Map(), request: 0, load: 0 };

/** @param {unknown} error */
function report(error) {
  message.textContent = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
  if (error instanceof ApiError && error.status === 401) signOut();
}

/** @param {() => Promise<void>} work */
async function guarded(work) {
  try {
    message.textContent = '';
    await work();
  } catch (error) {
    report(error);
  }
}

function documentPath() {
  const { kind, id } = /** @type {DocumentEntry} */ (state.document);
  return `/${kind}/${encodeURIComponent(id)}`;
}

async function signIn() {
  state.documents = await allPages((after) => `?limit=1000&after=${encodeURIComponent(after)}`, 'documents');
  signInForm.hidden = true;
  signOutButton.hidden = false;
  workspace.hidden = false;
  picker.replaceChildren(...state.documents.map((entry) => h('option', { value: entry.name }, [optionLabel(entry)])));
  if (state.documents.length === 0) {
    message.textContent = 'This tenant has no documents yet.';
    return;
  }
  await pick(state.documents[0]?.name ?? '');
}

/** @param {DocumentEntry} entry */
function optionLabel(entry) {
  return `${entry.kind}/${entry.id} (v${entry.version})`;
}

function signOut() {
  forgetToken();
  state.document = null;
  state.loaded = null;
  workspace.hidden = true;
  signOutButton.hidden = true;
  signInForm.hidden = false;
  tokenInput.value = '';
}

/** @param {string} name */
async function pick(name) {
  state.document = state.documents.find((entry) => entry.name === name) ?? null;
  state.versions.clear();
  picker.value = name;
  await load();
}

/** Loads the document's recent history and shows its latest version. */
async function load(selected = Number.POSITIVE_INFINITY) {
  const loading = ++state.load;
  const path = documentPath();
  const first = await call(`${path}/history?limit=1`);
  const from = Math.max(first.exactFrom > 0 ? first.exactFrom - 1 : 0, first.version - MAX_UPDATES);
  const updates = await allPages((after) => `${path}/history?limit=1000&after=${after}`, 'updates', String(from), MAX_UPDATES);
  // A later load is on its way (another document picked, or this one again): it shows what it finds, and
  // this one must not move the sliders back under the user's hands.
  if (loading !== state.load) return;
  const loaded = { latest: first.version, exactFrom: first.exactFrom, exactCheckpoints: first.exactCheckpoints, updates, from: Math.max(from, first.exactFrom) };
  state.loaded = loaded;
  const current = /** @type {DocumentEntry} */ (state.document);
  const option = [...picker.options].find((candidate) => candidate.value === current.name);
  if (option) option.textContent = optionLabel({ ...current, version: loaded.latest });
  for (const slider of [versionSlider, baseSlider]) {
    slider.min = String(loaded.from);
    slider.max = String(loaded.latest);
  }
  versionSlider.value = String(Math.min(selected, loaded.latest));
  baseSlider.value = String(Math.max(loaded.from, Number(versionSlider.value) - 1));
  const older = loaded.exactFrom > 0 ? `; pruned: exact from version ${loaded.exactFrom}${loaded.exactCheckpoints.length ? `, and at ${loaded.exactCheckpoints.join(', ')}` : ''}` : '';
  summary.textContent = `${updates.length} update(s) shown, latest version ${loaded.latest}${older}`;
  drawLegend(legend, updates);
  await showSelection();
}

/** Renders the selected version, the differences and the field changes between the two sliders' versions. */
async function showSelection() {
  const loaded = state.loaded;
  if (!loaded) return;
  const request = ++state.request;
  const version = Number(versionSlider.value);
  const base = Number(baseSlider.value);
  const [low, high] = base <= version ? [base, version] : [version, base];
  element('version-label').textContent = String(version);
  element('base-label').textContent = String(base);
  drawTimeline(timeline, loaded.updates, { base: low, version: high, onPick: (seq) => select(seq) });
  const [shown, before, changes] = await Promise.all([
    versionJson(version),
    versionJson(low === version ? high : low),
    high > low ? call(`${documentPath()}/changes?fromSeq=${low + 1}&toSeq=${high}&limit=${CHANGES_SHOWN}`) : { changes: [], next: null },
  ]);
  if (request !== state.request) return; // a later selection is on its way
  element('shown-version').textContent = String(version);
  element('shown-meta').textContent = shown.userId ? `by ${shown.userId}, ${new Date(shown.receivedAt).toLocaleString()} (${shown.origin})` : version === 0 ? 'empty, before the first update' : '';
  renderVersion(rendered, /** @type {DocumentEntry} */ (state.document).kind, shown.content);
  const [older, newer] = version === high ? [before, shown] : [shown, before];
  element('diff-range').textContent = `from version ${low} to ${high}`;
  const found = differences(older.content, newer.content);
  diffList.replaceChildren(...(found.length ? found.map((difference) => h('li', { class: difference.change }, [describe(difference, show)])) : [h('li', {}, ['no differences'])]));
  element('changes-range').textContent = `in updates ${low + 1} to ${high}${changes.next !== null ? ` (first ${CHANGES_SHOWN})` : ''}`;
  changesBody.replaceChildren(
    ...changes.changes.map((/** @type {any} */ row) =>
      h('tr', {}, [
        h('td', { class: 'number' }, [row.firstSeq === row.seq ? String(row.seq) : `${row.firstSeq}–${row.seq}`]),
        h('td', {}, [new Date(row.changedAt).toLocaleString()]),
        h('td', {}, [row.userId]),
        h('td', {}, [`${row.action} ${row.entity}${row.entityId ? ` ${row.entityId}` : ''}${row.field === '*' ? '' : `.${row.field}`}`]),
        h('td', {}, [show(row.oldValue)]),
        h('td', {}, [show(row.newValue)]),
      ]),
    ),
  );
  restoreButton.textContent = `Restore version ${version}…`;
  confirmBox.hidden = true;
}

/** @param {number} seq */
async function versionJson(seq) {
  // Keyed by document too: an answer for the document picked before may land after the next one is picked.
  const path = `${documentPath()}/versions/${seq}`;
  const cached = state.versions.get(path);
  if (cached) return cached;
  const version = await call(path);
  state.versions.set(path, version);
  return version;
}

/** @param {number} seq */
function select(seq) {
  baseSlider.value = String(Math.max(Number(baseSlider.min), seq - 1));
  versionSlider.value = String(seq);
  void guarded(showSelection);
}

async function restore() {
  const version = Number(versionSlider.value);
  const restored = await call(`${documentPath()}/restore`, { method: 'POST', body: { version } });
  element('restore-result').textContent =
    restored.version === state.loaded?.latest ? `Version ${version} is what the document already is; nothing changed.` : `Restored version ${version} as version ${restored.version}.`;
  await load(restored.version);
}

/** Signs in with the stored token; a token the API refuses is forgotten. */
async function trySignIn() {
  await guarded(signIn);
  if (workspace.hidden) forgetToken();
}

signInForm.addEventListener('submit', (event) => {
  // Handled here, never submitted: the token must not travel in a URL.
  event.preventDefault();
  setToken(tokenInput.value.trim());
  tokenInput.value = '';
  void trySignIn();
});
signOutButton.addEventListener('click', signOut);
picker.addEventListener('change', () => void guarded(() => pick(picker.value)));
element('refresh').addEventListener('click', () => void guarded(() => load(Number(versionSlider.value))));
for (const slider of [versionSlider, baseSlider]) slider.addEventListener('input', () => void guarded(showSelection));
restoreButton.addEventListener('click', () => {
  element('confirm-text').textContent = `Make the live document equal version ${versionSlider.value}? This adds a new version; nothing earlier is lost.`;
  element('restore-result').textContent = '';
  confirmBox.hidden = false;
});
element('cancel-restore').addEventListener('click', () => (confirmBox.hidden = true));
element('confirm-restore').addEventListener('click', () => {
  confirmBox.hidden = true;
  void guarded(restore);
});
window.addEventListener('resize', () => void guarded(showSelection));

if (hasToken()) void trySignIn();
