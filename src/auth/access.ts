import type { DocumentName } from '../documents/name.ts';
import type { Write } from '../documents/update-scope.ts';
import { ConcordError } from '../errors.ts';
import type { Principal, Role } from './tokens.ts';

/** Who may change what (SPEC, Roles): content, or comments only. */
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

/**
 * What a commenter may write: new comments and replies (whose `authorId`, if
 * set, is their own) and `resolved` on existing comments. Nothing else: not
 * other fields of existing comments, not removing comments, nothing outside
 * `comments`.
 */
export function commenterMay(writes: Write[], userId: string): boolean {
  return writes.every(
    (write) =>
      write.root === COMMENTS &&
      ((write.path === 'member' && write.memberIsNew) ||
        (write.path === 'member-field' && write.memberIsNew && (write.key !== 'authorId' || write.value === userId)) ||
        (write.path === 'member-field' && !write.memberIsNew && write.key === 'resolved')),
  );
}

const COMMENTS = 'comments';
