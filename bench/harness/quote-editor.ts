import * as Y from 'yjs';
import { addLine } from '../../test/support/documents.ts';

/**
 * What a bench editor does to a quote, as a person editing it would: each
 * edit is one transaction that changes one thing the audit trail and the
 * tables follow — a quantity or unit price on one of the editor's own lines,
 * a keystroke in `notes`, the title. Every edit makes exactly one new Yjs item
 * under the editor's clientID, which is how receivers and acknowledgements
 * are matched to it.
 */
export class QuoteEditor {
  private readonly doc: Y.Doc;
  private readonly lines: Y.Map<unknown>[] = [];
  private readonly name: string;
  private count = 0;

  constructor(doc: Y.Doc, name: string) {
    this.doc = doc;
    this.name = name;
  }

  /** Adds `count` lines of this editor's own, in one transaction. */
  addLines(count: number): void {
    this.doc.transact(() => {
      for (let i = 0; i < count; i++) {
        const id = `${this.name}-l${this.lines.length}`;
        this.lines.push(addLine(this.doc, { id, sku: `SKU-${this.lines.length}`, description: `Item ${this.lines.length}`, quantity: 1, unitPrice: 9.99, discountPct: 5 }));
      }
    });
  }

  /** The next edit, to run inside the client's transaction. */
  next(): void {
    const n = ++this.count;
    const line = this.lines[n % this.lines.length];
    const kind = n % 4;
    if (line && kind === 0) line.set('quantity', n);
    else if (line && kind === 1) line.set('unitPrice', 10 + (n % 400) / 4);
    else if (kind === 2) {
      const notes = this.doc.getText('notes');
      notes.insert(notes.length, n % 10 === 0 ? ' ' : 'abcdefghij'[n % 10]!);
    } else this.doc.getMap('quote').set('title', `${this.name}: revision ${n}`);
  }
}
