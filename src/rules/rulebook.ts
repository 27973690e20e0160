import * as Y from 'yjs';
import type { Principal } from '../auth/tokens.ts';
import { kindOf } from '../documents/kinds.ts';
import type { DocumentName } from '../documents/name.ts';
import { describeEffect } from '../documents/update-scope.ts';
import { ConcordError } from '../errors.ts';
import { judgeWrites } from './check.ts';
import type { FieldPolicies } from './field-policies.ts';
import type { DocumentLocks } from './locks.ts';

/** Judges an update against a live document: the refusal (`bad-update` for one it cannot read), or null when it may be applied. */
export type Judge = (doc: Y.Doc, update: Uint8Array) => ConcordError | null;

/**
 * The business rules every write obeys, WebSocket and server-side alike
 * (docs/rules.md): the kind's frozen statuses and transitions, its valid
 * values, the tenant's field permissions, the document's locks.
 */
export class RuleBook {
  /** Per document, the end of the last judged write's turn (see judgeFor). */
  private readonly turns = new Map<string, Promise<void>>();
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
   * tenant's field permissions) is awaited first; then the write takes its
   * turn on the document: judging is synchronous, and no other judged write
   * (another connection's, a PATCH) is applied between judging this one and
   * applying it. The caller ends the turn once the write is applied (or
   * refused); should it not (a later hook threw), the turn ends at the next
   * turn of the event loop, after the microtasks that apply a write.
   */
  async judgeFor(principal: Principal, document: DocumentName): Promise<{ judge: Judge; endTurn: () => void }> {
    const policy = await this.policies.of(document.tenant);
    const endTurn = await this.turn(document.name);
    const kind = kindOf(document.kind);
    const judge: Judge = (doc, update) => {
      const writes = effectOrRefusal(doc, update);
      if (writes instanceof ConcordError) return writes;
      if (writes.length === 0) return null;
      const removesAgain = () => removesRemoved(doc, update);
      return judgeWrites(writes, { kind, doc, actor: principal, policy, locks: this.locks.held(document.name), now: Date.now(), removesAgain });
    };
    return { judge, endTurn };
  }

  /** Waits for the document's previous turn to end; answers how to end this one. */
  private async turn(name: string): Promise<() => void> {
    const previous = this.turns.get(name);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    this.turns.set(name, mine);
    await previous;
    const end = () => {
      release();
      if (this.turns.get(name) === mine) this.turns.delete(name);
    };
    setImmediate(end);
    return end;
  }
}

/** What the update would change, or its `bad-update` refusal: every caller refuses it as a broken rule, never throws it on. */
function effectOrRefusal(doc: Y.Doc, update: Uint8Array): ReturnType<typeof describeEffect> | ConcordError {
  try {
    return describeEffect(doc, update);
  } catch (error) {
    if (error instanceof ConcordError) return error;
    throw error;
  }
}

/** Whether the update's delete set names content the document has removed already. */
function removesRemoved(doc: Y.Doc, update: Uint8Array): boolean {
  for (const [client, ranges] of Y.decodeUpdate(update).ds.clients) {
    const structs = doc.store.clients.get(client);
    if (!structs) continue;
    const state = Y.getState(doc.store, client);
    for (const { clock, len } of ranges) {
      for (let index = clock < state ? Y.findIndexSS(structs, clock) : structs.length; index < structs.length && structs[index]!.id.clock < clock + len; index++) {
        const struct = structs[index]!;
        if (!(struct instanceof Y.Item) || struct.deleted) return true;
      }
    }
  }
  return false;
}
