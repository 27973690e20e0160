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
import { currencyCode, isoDate, optionalText, percent } from './values.ts';

export const quoteStatuses = ['draft', 'sent', 'accepted', 'rejected', 'expired'] as const;

/** round2(subtotal * (1 - discountPct/100) * (1 + taxPct/100)). */
function quoteTotals(view: HeaderView<LineTotals>): PricedTotals {
  const subtotal = subtotalOf(view.totals);
  const { discountPct, taxPct } = view.header;
  if (subtotal === null || typeof discountPct !== 'number' || typeof taxPct !== 'number') return { subtotal, total: null };
  return { subtotal, total: money(plusPercent(plusPercent(subtotal, -discountPct), taxPct)) };
}

const lines = pricedLines('quote_line');

/** A sales quote: `<tenant>/quote/<id>`. */
export const quote: DocumentKindModule<LineTotals> = {
  layout: {
    header: {
      key: 'quote',
      entity: 'quote',
      fields: {
        number: optionalText,
        title: optionalText,
        customerId: optionalText,
        customerName: optionalText,
        status: z.enum(quoteStatuses).default('draft'),
        currency: currencyCode,
        validUntil: isoDate.nullable().default(null),
        discountPct: percent.default(0),
        taxPct: percent.default(0),
      },
    },
    texts: ['notes'],
    collections: { lines, comments: commentsOn(lines) },
  },
  tableCollection: 'lines',
  // Only a sent quote expires; an accepted one is rejected only after an admin reopens it.
  workflow: {
    field: 'status',
    transitions: {
      draft: ['sent', 'accepted', 'rejected'],
      sent: ['draft', 'accepted', 'rejected', 'expired'],
      accepted: ['draft', 'sent'],
      rejected: ['draft', 'sent'],
      expired: ['draft', 'sent'],
    },
    frozen: new Set(['accepted', 'rejected', 'expired']),
  },

  totals: lineTotals,

  render(view) {
    return renderPriced('quote', view, quoteTotals(view));
  },

  tables: {
    header: {
      name: 'quotes',
      key: ['id'],
      columns: {
        id: 'text',
        number: 'text',
        title: 'text',
        customer_id: 'text',
        customer_name: 'text',
        status: 'text',
        currency: 'text',
        valid_until: 'date',
        discount_pct: 'numeric',
        tax_pct: 'numeric',
        ...pricedSummaryColumns,
      },
    },
    members: pricedLineTable('quote_lines', 'quote_id'),
  },

  headerRow(view) {
    const { header } = view;
    return {
      id: view.id,
      number: header.number!,
      title: header.title!,
      customer_id: header.customerId!,
      customer_name: header.customerName!,
      status: header.status!,
      currency: header.currency!,
      valid_until: header.validUntil!,
      discount_pct: header.discountPct!,
      tax_pct: header.taxPct!,
      ...pricedSummaryRow(view, quoteTotals(view)),
    };
  },

  memberRow: pricedLineRow,
};
