import Big from 'big.js';
import { z } from 'zod';
import { comments } from './comments.ts';
import type { DocumentKindModule, DocumentView } from './kind.ts';
import type { Fields, Member } from './layout.ts';
import { amount, isoDate, memberId, optionalText, percent } from './values.ts';

export const quoteStatuses = ['draft', 'sent', 'accepted', 'rejected', 'expired'] as const;

interface QuoteTotals {
  lineCount: number;
  /** Sum of the line totals that could be computed. */
  sum: Big;
  /** Lines whose total cannot be computed (a value breaks the layout): the subtotal is then unknown. */
  unknownLines: number;
}

// numeric(14,2)
const MAX_MONEY = new Big('1e12');

/** round2(quantity * unitPrice * (1 - discountPct/100)), in decimal; null when a value is missing or broken. */
export function lineTotal(fields: Fields): Big | null {
  const { quantity, unitPrice, discountPct } = fields;
  if (typeof quantity !== 'number' || typeof unitPrice !== 'number' || typeof discountPct !== 'number') return null;
  return money(new Big(quantity).times(unitPrice).times(new Big(100).minus(discountPct).div(100)));
}

function money(value: Big): Big | null {
  const rounded = value.round(2, Big.roundHalfUp);
  return rounded.abs().gte(MAX_MONEY) ? null : rounded;
}

function quoteTotals(view: DocumentView<QuoteTotals>): { subtotal: Big | null; total: Big | null } {
  const { sum, unknownLines } = view.totals;
  const { discountPct, taxPct } = view.header;
  const subtotal = unknownLines > 0 ? null : money(sum);
  if (subtotal === null || typeof discountPct !== 'number' || typeof taxPct !== 'number') return { subtotal, total: null };
  const total = money(subtotal.times(new Big(100).minus(discountPct).div(100)).times(new Big(100).plus(taxPct).div(100)));
  return { subtotal, total };
}

function countLine(totals: QuoteTotals, member: Member, sign: 1 | -1): void {
  totals.lineCount += sign;
  const total = lineTotal(member.fields);
  if (total === null) totals.unknownLines += sign;
  else totals.sum = sign === 1 ? totals.sum.plus(total) : totals.sum.minus(total);
}

/** A sales quote: `<tenant>/quote/<id>`. */
export const quote: DocumentKindModule<QuoteTotals> = {
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
        currency: z.string().regex(/^[A-Z]{3}$/).nullable().default(null),
        validUntil: isoDate.nullable().default(null),
        discountPct: percent.default(0),
        taxPct: percent.default(0),
      },
    },
    texts: ['notes'],
    collections: {
      lines: {
        entity: 'quote_line',
        fields: {
          id: memberId,
          sku: optionalText,
          description: optionalText,
          quantity: amount.nullable().default(null),
          unitPrice: amount.nullable().default(null),
          discountPct: percent.default(0),
        },
      },
      comments,
    },
  },
  tableCollection: 'lines',

  totals: {
    empty: () => ({ lineCount: 0, sum: new Big(0), unknownLines: 0 }),
    add: (totals, member) => countLine(totals, member, 1),
    remove: (totals, member) => countLine(totals, member, -1),
  },

  render(view) {
    const { subtotal, total } = quoteTotals(view);
    return {
      quote: view.header,
      notes: view.texts.notes ?? '',
      lines: view.members('lines').map((line) => line.fields),
      comments: view.members('comments').map((comment) => comment.fields),
      totals: { subtotal: subtotal?.toNumber() ?? null, total: total?.toNumber() ?? null },
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
        subtotal: 'numeric',
        total: 'numeric',
      },
    },
    members: {
      name: 'quote_lines',
      parentColumn: 'quote_id',
      key: ['quote_id', 'id'],
      columns: {
        quote_id: 'text',
        id: 'text',
        position: 'integer',
        sku: 'text',
        description: 'text',
        quantity: 'numeric',
        unit_price: 'numeric',
        discount_pct: 'numeric',
        line_total: 'numeric',
      },
    },
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

  memberRow(line, position) {
    const { fields } = line;
    return {
      id: line.id,
      position,
      sku: fields.sku!,
      description: fields.description!,
      quantity: fields.quantity!,
      unit_price: fields.unitPrice!,
      discount_pct: fields.discountPct!,
      line_total: lineTotal(fields)?.toFixed(2) ?? null,
    };
  },
};
