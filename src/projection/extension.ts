import type { afterLoadDocumentPayload, afterUnloadDocumentPayload, Extension } from '@hocuspocus/server';
import type * as Y from 'yjs';
import type { CommitPipeline } from '../commit/pipeline.ts';
import { updateChanges } from '../commit/writer.ts';
import { authorOf, transactionChanges } from '../context.ts';
import { toPgJson } from '../db/json.ts';
import { kindOf } from '../documents/kinds.ts';
import { parseDocumentName } from '../documents/kinds.ts';
import type { DocumentName } from '../documents/name.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { DocumentTracker } from './tracker.ts';
import type { LayoutViolation } from './view.ts';

export interface ProjectionOptions {
  /** Its writers' memory of a document (text bursts, owed rows) goes when the document is unloaded. */
  pipeline: CommitPipeline;
  log: Logger;
  metrics: Metrics;
}

/**
 * Reads every transaction of a loaded document through its kind's layout
 * (DocumentTracker), in `afterTransaction`, while the transaction's deleted
 * content is still there, and puts what it changed on the transaction
 * (transactionChanges): the field changes and rows a logged update commits
 * with (Persistence), and the rows content from other instances touched
 * (ClusterFollower). Values that break the layout are counted and logged.
 */
export class Projection implements Extension {
  extensionName = 'concord-projection';

  private readonly pipeline: CommitPipeline;
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(options: ProjectionOptions) {
    this.pipeline = options.pipeline;
    this.log = options.log;
    this.metrics = options.metrics;
  }

  async afterLoadDocument({ document }: afterLoadDocumentPayload): Promise<void> {
    const name = parseDocumentName(document.name);
    let tracker: DocumentTracker;
    try {
      tracker = new DocumentTracker(kindOf(name.kind), document, name.id, (violation) => this.violated(name, violation));
    } catch (error) {
      // The document still loads and its updates are logged; its tables are rebuilt at the next load.
      this.log.error({ err: error, code: 'tracking-failed', document: name.name }, 'could not read the document through its layout');
      return;
    }
    document.on('afterTransaction', (transaction: Y.Transaction) => this.track(name, tracker, transaction));
  }

  /** The commit writers' memory of the document (text bursts, owed rows) goes with it. */
  async afterUnloadDocument({ documentName }: afterUnloadDocumentPayload): Promise<void> {
    this.pipeline.forget([documentName]);
  }

  /**
   * Every transaction moves the tracker on. One that will be logged (it has an
   * author) is read with its header row; any other (relayed, or read from the
   * log) only keeps the tracker up with the document.
   */
  private track(document: DocumentName, tracker: DocumentTracker, transaction: Y.Transaction): void {
    try {
      const changes = authorOf(transaction.origin) ? tracker.observe(transaction) : tracker.follow(transaction);
      transactionChanges.set(transaction, updateChanges(changes, tracker));
    } catch (error) {
      // Never let a projection bug stop an update from being applied and logged.
      this.metrics.persistenceErrors.inc({ operation: 'track' });
      this.log.error({ err: error, code: 'tracking-failed', document: document.name }, 'could not read what an update changed; it is logged without audit rows');
    }
  }

  private violated(document: DocumentName, violation: LayoutViolation): void {
    this.metrics.layoutViolations.inc({ kind: document.kind, field: violation.field });
    // A nested Yjs type or binary content has no useful JSON: name its type.
    const { value: raw } = violation;
    const named = raw !== null && typeof raw === 'object' && !Array.isArray(raw) && Object.getPrototypeOf(raw) !== Object.prototype;
    const value = named ? `<${raw.constructor.name}>` : JSON.stringify(toPgJson(raw)).slice(0, 200);
    this.log.warn({ code: 'layout-violation', document: document.name, entity: violation.entity, entityId: violation.entityId, field: violation.field, value }, 'a value breaks the layout; it reads as null');
  }
}
