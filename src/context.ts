import type { Principal } from './auth/tokens.ts';
import type { DocumentName } from './documents/name.ts';

/** What Concord keeps on every authenticated document connection. */
export interface ConnectionContext {
  principal: Principal;
  document: DocumentName;
}
