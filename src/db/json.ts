import type { Json } from '../json.ts';

/** Deeper JSON than this is cut off (read as null) rather than risk the stack or Postgres's limits. */
const MAX_DEPTH = 100;

/**
 * Postgres text and jsonb refuse NUL and lone surrogates, which Yjs strings
 * may hold; one such value must never fail a commit, so they become U+FFFD.
 */
function pgText(value: string): string {
  return value.toWellFormed().replaceAll('\0', '\uFFFD');
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
  const clean: Record<string, Json> = {};
  for (const [key, inner] of Object.entries(value)) if (inner !== undefined) clean[pgText(key)] = toPgJson(inner, depth + 1);
  return clean;
}

/** JSON text for a jsonb parameter. */
export function pgJson(value: unknown): string {
  return JSON.stringify(toPgJson(value));
}
