import type * as Y from 'yjs';
import type { Principal } from '../auth/tokens.ts';
import { kindOf } from '../documents/kinds.ts';
import type { DocumentName } from '../documents/name.ts';
import { describeEffect } from '../documents/update-scope.ts';
import type { ConcordError } from '../errors.ts';
import { judgeWrites } from './check.ts';
import type { FieldPolicies } from './field-policies.ts';
import type { DocumentLocks } from './locks.ts';

/** Judges an update against a live document: the refusal, or null when it may be applied. */
export type Judge = (doc: Y.Doc, update: Uint8Array) => ConcordError | null;

/**
 * The business rules every write obeys, WebSocket and server-side alike
 * (docs/rules.md): the kind's frozen statuses and transitions, its valid
 * values, the tenant's field permissions, the document's locks.
 */
export class RuleBook {
  private readonly locks: Pick<DocumentLocks, 'held'>;
  private readonly policies: Pick<FieldPolicies, 'of'>;

  constructor(configuration: { locks: RuleBook['locks']; policies: RuleBook['policies'] }) {
    this.locks = configuration.locks;
    this.policies = configuration.policies;
  }

  /**
   * Reads what a document's writes are judged by while Postgres answers (the
   * document is loading): through an outage its writes are judged by the
   * tenant's last field permissions instead of waiting for them.
   */
  async prepare(document: DocumentName): Promise<void> {
    await this.policies.of(document.tenant);
  }

  /**
   * A judge for one principal's write to one document. What may wait (the
   * tenant's field permissions) is awaited here; the judging itself is
   * synchronous, so nothing changes the document between it and applying.
   */
  async judgeFor(principal: Principal, document: DocumentName): Promise<Judge> {
    const policy = await this.policies.of(document.tenant);
    const kind = kindOf(document.kind);
    return (doc, update) => {
      const writes = describeEffect(doc, update);
      if (writes.length === 0) return null;
      return judgeWrites(writes, { kind, doc, actor: principal, policy, locks: this.locks.held(document.name), now: Date.now() });
    };
  }
}
