import type { DocumentName } from '../documents/name.ts';
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
