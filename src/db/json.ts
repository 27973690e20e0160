import type { Json } from '../json.ts';

/** Deeper JSON than this is cut off (read as null) rather than risk the stack or Postgres's limits. */
const MAX_DEPTH = 100;

/**
 * Postgres text and jsonb refuse NUL and lone surrogates, which Yjs strings
 * may hold; one such value must never fail a commit, so they become U+FFFD.
 */
function pgText(value: string): string {
  return isPgText(value) ? value : value.toWellFormed().replaceAll('\0', '\uFFFD');
}

function isPgText(value: string): boolean {
  return value.isWellFormed() && !value.includes('\0');
}

/**
 * Any value as JSON that Postgres accepts: strings and keys cleaned, BigInts
 * (which Yjs carries) as decimal strings, anything else that is not JSON as
 * null, nesting cut at MAX_DEPTH.
 */
export function toPgJson(value: unknown, depth = 0): Json {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'string') return pgText(value);
  if (typeof value === 'bigint') return value.toString();
  if (depth >= MAX_DEPTH || typeof value !== 'object') return null;
  if (Array.isArray(value)) return value.map((item) => toPgJson(item, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype) return null;
  const clean: Array<[string, Json]> = [];
  for (const key of Object.keys(value)) {
    const inner = (value as Record<string, unknown>)[key];
    if (inner !== undefined) clean.push([pgText(key), toPgJson(inner, depth + 1)]);
  }
  // Each key becomes an own property, `__proto__` too: assigning that one would set the copy's prototype instead.
  return Object.fromEntries(clean);
}

/**
 * Whether JSON.stringify writes `value` as toPgJson would clean it: only
 * null, booleans, finite numbers, strings Postgres takes, arrays and plain
 * objects, within MAX_DEPTH. Nearly every commit's rows are, and checking
 * them costs no copy.
 */
function isPgJson(value: unknown, depth = 0): boolean {
  if (value === null || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (typeof value === 'string') return isPgText(value);
  if (depth >= MAX_DEPTH || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.every((item) => isPgJson(item, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype) return false;
  for (const key of Object.keys(value)) {
    const inner = (value as Record<string, unknown>)[key];
    if (!isPgText(key) || (inner !== undefined && !isPgJson(inner, depth + 1))) return false;
  }
  return true;
}

/** JSON text for a jsonb parameter: toPgJson's, without its copy when there is nothing to clean. */
export function pgJson(value: unknown): string {
  return JSON.stringify(isPgJson(value) ? value : toPgJson(value));
}
