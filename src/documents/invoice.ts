import { z } from 'zod';
import { commentsOn } from './comments.ts';
import type { DocumentKindModule, HeaderView } from './kind.ts';
import {
  type LineTotals,
  lineTotals,
  money,
  plusPercent,
  pricedLineRow,
  pricedLines,
  pricedLineTable,
  pricedSummaryColumns,
  pricedSummaryRow,
  type PricedTotals,
  renderPriced,
  subtotalOf,
} from './priced-lines.ts';
import { currencyCode, isoDate, memberId, optionalText, percent } from './values.ts';

export const invoiceStatuses = ['draft', 'issued', 'paid', 'void'] as const;

/** round2(subtotal * (1 + taxPct/100)): a quote's totals without the header discount. */
function invoiceTotals(view: HeaderView<LineTotals>): PricedTotals {
  const subtotal = subtotalOf(view.totals);
  const { taxPct } = view.header;
  if (subtotal === null || typeof taxPct !== 'number') return { subtotal, total: null };
  return { subtotal, total: money(plusPercent(subtotal, taxPct)) };
}

const lines = pricedLines('invoice_line');

/** An invoice, billing a quote or not: `<tenant>/invoice/<id>`. */
export const invoice: DocumentKindModule<LineTotals> = {
  layout: {
    header: {
      key: 'invoice',
      entity: 'invoice',
      fields: {
        number: optionalText,
        quoteId: memberId.nullable().default(null),
        customerId: optionalText,
        customerName: optionalText,
        status: z.enum(invoiceStatuses).default('draft'),
        currency: currencyCode,
        issueDate: isoDate.nullable().default(null),
        dueDate: isoDate.nullable().default(null),
        taxPct: percent.default(0),
      },
    },
    texts: ['notes'],
    collections: { lines, comments: commentsOn(lines) },
  },
  tableCollection: 'lines',
  // A draft is issued or voided; an issued invoice is paid or voided; a paid or void one only goes back (admins).
  workflow: {
    field: 'status',
    transitions: { draft: ['issued', 'void'], issued: ['paid', 'void', 'draft'], paid: ['issued'], void: ['draft'] },
    frozen: new Set(['issued', 'paid', 'void']),
  },

  totals: lineTotals,

  render(view) {
    return renderPriced('invoice', view, invoiceTotals(view));
  },

  tables: {
    header: {
      name: 'invoices',
      key: ['id'],
      columns: {
        id: 'text',
        number: 'text',
        quote_id: 'text',
        customer_id: 'text',
        customer_name: 'text',
        status: 'text',
        currency: 'text',
        issue_date: 'date',
        due_date: 'date',
        tax_pct: 'numeric',
        ...pricedSummaryColumns,
      },
    },
    members: pricedLineTable('invoice_lines', 'invoice_id'),
  },

  headerRow(view) {
    const { header } = view;
    return {
      id: view.id,
      number: header.number!,
      quote_id: header.quoteId!,
      customer_id: header.customerId!,
      customer_name: header.customerName!,
      status: header.status!,
      currency: header.currency!,
      issue_date: header.issueDate!,
      due_date: header.dueDate!,
      tax_pct: header.taxPct!,
      ...pricedSummaryRow(view, invoiceTotals(view)),
    };
  },

  memberRow: pricedLineRow,
};
