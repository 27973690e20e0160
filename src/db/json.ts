import type { Json } from '../documents/layout.ts';

/**
 * Postgres text and jsonb refuse NUL and lone surrogates, which Yjs strings
 * may hold; one such value must never fail a commit, so they become U+FFFD.
 */
export function pgText(value: string): string {
  return value.toWellFormed().replaceAll('\0', '\uFFFD');
}

/** JSON for a jsonb parameter, with every string made safe for Postgres. */
export function pgJson(value: Json | Json[] | Record<string, Json>[] | object): string {
  return JSON.stringify(value, (_key, inner: unknown) => (typeof inner === 'string' ? pgText(inner) : inner));
}
