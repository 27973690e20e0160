/**
 * The history page's calls to Concord's admin API (docs/history.md). The
 * token lives in this module and in the tab's sessionStorage (so a reload
 * keeps the session), is sent only as an Authorization header, and never
 * appears in a URL.
 */

const STORAGE_KEY = 'concord.adminToken';
let token = sessionStorage.getItem(STORAGE_KEY) ?? '';

/** An answer of the API that is not 2xx, with its code and message. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function hasToken() {
  return token !== '';
}

/** @param {string} value */
export function setToken(value) {
  token = value;
  sessionStorage.setItem(STORAGE_KEY, value);
}

export function forgetToken() {
  token = '';
  sessionStorage.removeItem(STORAGE_KEY);
}

/**
 * @param {string} path under /api/documents
 * @param {{ method?: string, body?: unknown }} [options]
 * @returns {Promise<any>}
 */
export async function call(path, options = {}) {
  const response = await fetch(`/api/documents${path}`, {
    method: options.method ?? 'GET',
    headers: { authorization: `Bearer ${token}`, ...(options.body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, answer.error?.code ?? 'internal', answer.error?.message ?? `the server answered ${response.status}`);
  return answer;
}

/**
 * Every page of a paged listing (docs/history.md, Paging), up to `max` items.
 * @param {(after: string) => string} pathAfter the path for the page after a cursor
 * @param {string} listKey the array in each answer
 * @param {string} [firstCursor]
 * @param {number} [max]
 */
export async function allPages(pathAfter, listKey, firstCursor = '', max = 20_000) {
  /** @type {any[]} */
  const items = [];
  let cursor = firstCursor;
  for (;;) {
    const page = await call(pathAfter(cursor));
    items.push(...page[listKey]);
    if (page.next === null || items.length >= max) return items;
    cursor = String(page.next);
  }
}
