import * as Y from 'yjs';

/** What `change` does to `writer`, as the update a provider would send. */
export function updateFrom(writer: Y.Doc, change: (doc: Y.Doc) => void): Uint8Array {
  const before = Y.encodeStateVector(writer);
  change(writer);
  return Y.encodeStateAsUpdate(writer, before);
}

/** Appends a quote line the way a client does: a Y.Map in `lines`. */
export function addLine(doc: Y.Doc, fields: Record<string, unknown>, position?: number): Y.Map<unknown> {
  const line = new Y.Map<unknown>();
  const lines = doc.getArray('lines');
  doc.transact(() => {
    lines.insert(position ?? lines.length, [line]);
    for (const [key, value] of Object.entries(fields)) line.set(key, value);
  });
  return line;
}

/** Appends a numbered edit: a line whose quantity is `value` (id `n<value>`), for tests that count and order edits. */
export function pushNumbered(doc: Y.Doc, value: number): void {
  addLine(doc, { id: `n${value}`, quantity: value });
}

/** The numbers pushNumbered appended, in the document's order. */
export function numbersOf(doc: Y.Doc): number[] {
  return doc.getArray<Y.Map<unknown>>('lines').map((line) => line.get('quantity') as number);
}

export function lineById(doc: Y.Doc, id: string): Y.Map<unknown> | undefined {
  return doc.getArray('lines').toArray().find((line): line is Y.Map<unknown> => line instanceof Y.Map && line.get('id') === id);
}

export function addComment(doc: Y.Doc, fields: Record<string, unknown>): void {
  const comment = new Y.Map<unknown>();
  doc.transact(() => {
    doc.getArray('comments').push([comment]);
    for (const [key, value] of Object.entries(fields)) comment.set(key, value);
  });
}

/** Types `text` into a Y.Text one character per transaction, as an editor sends keystrokes. */
export function typeInto(text: Y.Text, at: number, typed: string): void {
  [...typed].forEach((character, offset) => text.insert(at + offset, character));
}

/** Calls the HTTP API with a bearer token; returns the status and the parsed body. */
export async function api(baseUrl: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    // A server that never answers fails the test at this request (its stack says which), not at the test's timeout.
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, body: await response.json() };
}
