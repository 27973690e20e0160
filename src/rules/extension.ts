import type { afterHandleMessagePayload, afterLoadDocumentPayload, beforeHandleMessagePayload, Connection, Extension } from '@hocuspocus/server';
import type { WriteRefusals } from '../auth/write-refusals.ts';
import type { ConnectionContext } from '../context.ts';
import { parseDocumentName } from '../documents/kinds.ts';
import { readFrame } from '../protocol.ts';
import type { RuleBook } from './rulebook.ts';

/**
 * Holds every WebSocket write to the business rules (RuleBook) before it is
 * applied; a write that breaks one is refused whole, like one the role may not
 * make (WriteRefusals), with the code and the fields it touched.
 */
export class Rules implements Extension {
  extensionName = 'concord-rules';

  private readonly rules: RuleBook;
  private readonly refusals: WriteRefusals;
  /** The turn a connection's judged write holds on its document until it is applied. */
  private readonly turns = new WeakMap<Connection, () => void>();

  constructor(configuration: { rules: RuleBook; refusals: WriteRefusals }) {
    this.rules = configuration.rules;
    this.refusals = configuration.refusals;
  }

  async afterLoadDocument({ documentName }: afterLoadDocumentPayload): Promise<void> {
    // Should Postgres fail right now, the first write reads them instead.
    await this.rules.prepare(parseDocumentName(documentName)).catch(() => undefined);
  }

  async beforeHandleMessage({ connection, update, document }: beforeHandleMessagePayload): Promise<void> {
    // Read-only: a viewer, or a write Authorization refused already.
    if (connection.readOnly) return;
    const { write } = readFrame(update);
    if (!write) return;
    const { principal, document: name } = connection.context as ConnectionContext;
    const { judge, endTurn } = await this.rules.judgeFor(principal, name);
    const refusal = judge(document, write.update);
    if (!refusal) return void this.turns.set(connection, endTurn);
    endTurn();
    this.refusals.refuse(connection, refusal);
  }

  /** The write is applied: the document's next write may be judged. */
  async afterHandleMessage({ connection }: afterHandleMessagePayload): Promise<void> {
    this.turns.get(connection)?.();
    this.turns.delete(connection);
    this.refusals.release(connection);
  }
}
