import type { CommitWriter, PreparedWrite, TrackedEntry } from '../commit/writer.ts';
import { extendFieldChanges, insertedIds, insertFieldChanges, type FieldChangeRow } from '../db/field-changes.ts';

/** A text field's open burst of typing: its row grows while the same user keeps typing. */
interface Burst {
  lastAt: number;
  /** How many updates its row covers. */
  updates: number;
  /** Known once the row is committed. */
  rowId?: number;
  /** The row being inserted in the current commit, still open to extension. */
  pendingRow?: FieldChangeRow;
}

/** A committed burst row's new end, and the updates that extend it (`extendFieldChanges`). */
type Extension = Parameters<typeof extendFieldChanges>[0][number];

export interface AuditTrailConfiguration {
  /** AUDIT_TEXT_BURST_MS: a longer pause in typing ends a burst. */
  burstMs: number;
  /**
   * AUDIT_TEXT_BURST_MAX_UPDATES: most updates one burst row covers. Every
   * commit rewrites its open row (the text so far, the updates it covers), so
   * a row left to grow through an hour of typing would make each commit
   * slower than the last.
   */
  maxUpdates: number;
}

/**
 * Writes `field_changes`: one row per changed field, attributed to the user of
 * the update it came from. Text fields are coalesced: while one user keeps
 * typing into one field (pauses shorter than `burstMs`), a single row grows,
 * keeping the text from before the burst and moving its new text and seq forward;
 * it names the updates it was made by (`seqs`), so its author's other updates
 * inside its span are not taken for typing. A burst also ends after
 * `maxUpdates` updates.
 */
export class AuditTrail implements CommitWriter {
  readonly name = 'audit-trail';
  private readonly configuration: AuditTrailConfiguration;
  /** Per document, per `entity/entityId/field/user`: two people typing in one field each have their burst. */
  private readonly bursts = new Map<string, Map<string, Burst>>();

  constructor(configuration: AuditTrailConfiguration) {
    this.configuration = configuration;
  }

  /** The statements writing the rows of `entries` (all committed together); the bursts they leave are remembered once the commit lands. */
  prepare(entries: TrackedEntry[]): PreparedWrite {
    const inserts: FieldChangeRow[] = [];
    const extensions = new Map<number, Extension>();
    // Bursts as this commit leaves them; remembered only if it lands.
    const touched = new Map<string, Map<string, Burst>>();
    const burstOf = (name: string, key: string) => touched.get(name)?.get(key) ?? this.bursts.get(name)?.get(key);

    for (const { update, seq, changes } of entries) {
      const name = update.document.name;
      const changedAt = update.receivedAt.toISOString();
      for (const change of changes.fieldChanges) {
        const row: FieldChangeRow = {
          name,
          seq,
          first_seq: seq,
          entity: change.entity,
          entity_id: change.entityId,
          field: change.field,
          action: change.action,
          old_value: change.oldValue,
          new_value: change.newValue,
          user_id: update.userId,
          attribution: update.attribution ?? 'sender',
          changed_at: changedAt,
        };
        if (!change.text) {
          inserts.push(row);
          continue;
        }
        const key = `${change.entity}/${change.entityId}/${change.field}/${update.userId}`;
        const burst = burstOf(name, key);
        const at = update.receivedAt.getTime();
        const perDocument = touched.get(name) ?? new Map<string, Burst>();
        touched.set(name, perDocument);
        if (burst && at - burst.lastAt <= this.configuration.burstMs && burst.updates < this.configuration.maxUpdates) {
          const end = { seq, new_value: row.new_value, changed_at: changedAt };
          if (burst.pendingRow) {
            Object.assign(burst.pendingRow, end).seqs!.push(seq);
          } else {
            const extension: Extension = extensions.get(burst.rowId!) ?? { id: burst.rowId!, seqs: [], ...end };
            extensions.set(burst.rowId!, Object.assign(extension, end));
            extension.seqs.push(seq);
          }
          perDocument.set(key, { ...burst, lastAt: at, updates: burst.updates + 1 });
        } else {
          row.seqs = [seq];
          inserts.push(row);
          perDocument.set(key, { lastAt: at, updates: 1, pendingRow: row });
        }
      }
    }

    const insert = insertFieldChanges(inserts);
    const statements = [insert, extendFieldChanges([...extensions.values()])].filter((statement) => statement !== null);
    return { statements, committed: (results) => this.remember(touched, inserts, insert ? insertedIds(results[0]!.rows) : []) };
  }

  /** Ends the documents' open bursts. */
  forget(names: string[]): void {
    for (const name of names) this.bursts.delete(name);
  }

  /** Once the commit landed: the bursts as it left them, with the ids their new rows got. */
  private remember(touched: Map<string, Map<string, Burst>>, inserts: FieldChangeRow[], ids: number[]): void {
    const position = new Map(inserts.map((row, index) => [row, index]));
    for (const [name, perDocument] of touched) {
      const remembered = this.bursts.get(name) ?? new Map<string, Burst>();
      for (const [key, burst] of perDocument) {
        const rowId = burst.pendingRow ? ids[position.get(burst.pendingRow)!] : burst.rowId;
        remembered.set(key, { lastAt: burst.lastAt, updates: burst.updates, rowId });
      }
      this.bursts.set(name, remembered);
    }
  }
}
