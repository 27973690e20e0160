import * as Y from 'yjs';
import { addLine } from '../../test/support/documents.ts';

/**
 * What a bench editor does to a quote, as a person editing it would: each
 * edit is one transaction that changes one thing the audit trail and the
 * tables follow. In a cycle of eight: a word typed into `notes` (three letters
 * and a space, a keystroke each), a quantity and a unit price on one of the
 * editor's own lines, another quantity, the title. Every edit makes exactly
 * one new Yjs item under the editor's clientID, which is how receivers and
 * acknowledgements are matched to it.
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
    const n = this.count++;
    const step = n % 8;
    const line = this.lines[Math.floor(n / 8) % this.lines.length];
    if (step < 4) {
      const notes = this.doc.getText('notes');
      notes.insert(notes.length, step === 3 ? ' ' : 'abcdefghijklmnopqrstuvwxyz'[(n + step) % 26]!);
    } else if (line && (step === 4 || step === 6)) line.set('quantity', n);
    else if (line && step === 5) line.set('unitPrice', 10 + (n % 400) / 4);
    else this.doc.getMap('quote').set('title', `${this.name}: revision ${n}`);
  }
}
