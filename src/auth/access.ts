import type { DocumentName } from '../documents/name.ts';
import type { Write } from '../documents/update-scope.ts';
import { ConcordError } from '../errors.ts';
import type { Principal, Role } from './tokens.ts';

/** Who may change what (docs/protocol.md): content, or comments only. */
export const contentWriters: ReadonlySet<Role> = new Set(['editor', 'admin']);
export const commentWriters: ReadonlySet<Role> = new Set(['commenter', 'editor', 'admin']);

/** The tenant wall and the token's `docs` limit, for WebSocket and HTTP alike. */
export function checkDocumentAccess(principal: Principal, document: DocumentName): void {
  if (principal.tenant !== document.tenant) {
    throw new ConcordError('wrong-tenant', `the token is for tenant "${principal.tenant}", not "${document.tenant}"`);
  }
  if (principal.docs && !principal.docs.includes(`${document.kind}/${document.id}`)) {
    throw new ConcordError('not-allowed', `the token does not grant ${document.kind}/${document.id}`);
  }
}

/** The one root commenters write to. */
export const COMMENTS = 'comments';

/**
 * Whether one write is something a commenter may do: add a comment or reply
 * (a new Y.Map in `comments`, with `authorId`, if set, their own user id), or
 * set `resolved` of an existing comment to true or false. Not: other fields of
 * existing comments, removing comments, anything deeper, anything outside
 * `comments`. (The clientID it carries is checked by commenterMayApply.)
 */
export function commenterMay(write: Write, userId: string): boolean {
  if (write.root !== COMMENTS) return false;
  // Content the commenter deleted before sending arrives deleted; it still takes its key's place.
  const deleted = write.content === 'deleted';
  if (write.path === 'member') return write.memberIsNew && write.key === null && (write.content === 'map' || deleted);
  if (write.path !== 'member-field') return false;
  if (write.memberIsNew) return write.key !== 'authorId' || deleted || isOnly(write, userId);
  return write.key === 'resolved' && (write.deletion || deleted || isOnly(write, true) || isOnly(write, false));
}

/**
 * Whether a commenter may send an update making these writes: each one
 * allowed, and all its new content under one clientID that is theirs (a
 * commenter's provider writes under its own; content under another's would
 * collide with that user's next updates, and Yjs would drop or misplace them).
 */
export function commenterMayApply(writes: Write[], userId: string, mayUseClient: (client: number) => boolean): boolean {
  const clients = new Set(writes.filter((write) => !write.deletion).map((write) => write.client));
  return writes.every((write) => commenterMay(write, userId)) && clients.size <= 1 && [...clients].every(mayUseClient);
}

function isOnly(write: Write, value: unknown): boolean {
  return write.content === 'value' && write.values.length === 1 && write.values[0] === value;
}
