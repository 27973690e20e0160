import type { DocumentKind } from '../../src/documents/kinds.ts';
import type { Patch } from '../../src/documents/patch.ts';

/**
 * One small document per kind, for the kind contract test (test/kinds.test.ts).
 * `content` is written by a client as a PATCH body would write it (header
 * fields, texts, members to add); `patch` then changes one header field and
 * one member of the kind's table collection. A kind without a sample does not
 * type-check.
 */
export interface KindSample {
  content: Patch;
  /** For kinds with money: the JSON form's totals, worked out by hand (decimal, half-up). */
  totals?: { subtotal: number; total: number };
  patch: {
    header: Record<string, string | number>;
    member: { collection: string; id: string; fields: Record<string, string | number> };
  };
}

export const kindSamples: Record<DocumentKind, KindSample> = {
  quote: {
    content: {
      quote: { number: 'Q-1001', title: 'Pumps for Riverside', customerId: 'c-7', customerName: 'Riverside Water', status: 'sent', currency: 'EUR', validUntil: '2026-12-31', discountPct: 5, taxPct: 20 },
      notes: 'Delivery in two weeks.',
      lines: {
        add: [
          { id: 'l1', sku: 'P-100', description: 'Pump', quantity: 3, unitPrice: 19.99, discountPct: 10 },
          { id: 'l2', sku: 'V-7', description: 'Valve', quantity: 1.5, unitPrice: 0.285 },
        ],
      },
      comments: { add: [{ id: 'c1', authorId: 'sam', body: 'Is the price right?', anchor: 'line:l1' }] },
    },
    // 3 * 19.99 * 0.9 = 53.973 -> 53.97; 1.5 * 0.285 = 0.4275 -> 0.43; 54.40 * 0.95 * 1.2 = 62.016 -> 62.02.
    totals: { subtotal: 54.4, total: 62.02 },
    patch: { header: { title: 'Pumps for Riverside (revised)' }, member: { collection: 'lines', id: 'l2', fields: { quantity: 7 } } },
  },
  report: {
    content: {
      report: { title: 'Platform report', projectId: 'p-3', period: '2026-11', status: 'in_review' },
      sections: {
        add: [
          { id: 'summary', title: 'Summary', text: 'All systems green' },
          { id: 'risks', title: 'Risks', text: 'Disk space\nCertificates' },
        ],
      },
      comments: { add: [{ id: 'c1', authorId: 'rita', body: 'Add numbers', anchor: 'section:risks' }] },
    },
    patch: { header: { title: 'Platform report (final)' }, member: { collection: 'sections', id: 'risks', fields: { title: 'Open risks' } } },
  },
  invoice: {
    content: {
      invoice: { number: 'INV-2026-0042', quoteId: 'q-1001', customerId: 'c-7', customerName: 'Riverside Water', status: 'draft', currency: 'EUR', issueDate: '2026-12-01', dueDate: '2026-12-31', taxPct: 19 },
      notes: 'Payable within 30 days.',
      lines: {
        add: [
          { id: 'l1', sku: 'P-100', description: 'Pump', quantity: 3, unitPrice: 19.99, discountPct: 10 },
          { id: 'l2', sku: 'S-1', description: 'Installation', quantity: 2.5, unitPrice: 80.01 },
        ],
      },
      comments: { add: [{ id: 'c1', authorId: 'ina', body: 'Matches the delivery note', anchor: 'line:l2' }] },
    },
    // 3 * 19.99 * 0.9 = 53.973 -> 53.97; 2.5 * 80.01 = 200.025 -> 200.03; 254.00 * 1.19 = 302.26.
    totals: { subtotal: 254, total: 302.26 },
    // Issuing freezes the invoice after this update: the same update still changes a line.
    patch: { header: { status: 'issued' }, member: { collection: 'lines', id: 'l1', fields: { unitPrice: 21.5 } } },
  },
};
