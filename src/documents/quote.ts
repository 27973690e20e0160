import type Big from 'big.js';
import { z } from 'zod';
import { commentsOn } from './comments.ts';
import type { DocumentKindModule, DocumentView } from './kind.ts';
import { type LineTotals, lineTotals, money, plusPercent, pricedLineRow, pricedLines, pricedLineTable, subtotalOf, totalsJson } from './priced-lines.ts';
import { currencyCode, isoDate, optionalText, percent } from './values.ts';

export const quoteStatuses = ['draft', 'sent', 'accepted', 'rejected', 'expired'] as const;

/** round2(subtotal * (1 - discountPct/100) * (1 + taxPct/100)). */
function quoteTotals(view: DocumentView<LineTotals>): { subtotal: Big | null; total: Big | null } {
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

  totals: lineTotals,

  render(view) {
    const { subtotal, total } = quoteTotals(view);
    return {
      quote: view.header,
      notes: view.texts.notes ?? '',
      lines: view.members('lines').map((line) => line.fields),
      comments: view.members('comments').map((comment) => comment.fields),
      totals: totalsJson(subtotal, total),
    };
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
        notes: 'text',
        line_count: 'integer',
        subtotal: 'numeric(14,2)',
        total: 'numeric(14,2)',
      },
    },
    members: pricedLineTable('quote_lines', 'quote_id'),
  },

  headerRow(view) {
    const { header } = view;
    const { subtotal, total } = quoteTotals(view);
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
      notes: view.texts.notes ?? '',
      line_count: view.totals.lineCount,
      subtotal: subtotal?.toFixed(2) ?? null,
      total: total?.toFixed(2) ?? null,
    };
  },

  memberRow: pricedLineRow,
};
