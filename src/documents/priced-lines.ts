import Big from 'big.js';
import type { TableSpec } from '../db/tables.ts';
import type { DocumentView, HeaderView } from './kind.ts';
import type { CollectionLayout, Entity, Fields, Member } from './layout.ts';
import type { Json } from '../json.ts';
import { amount, memberId, optionalText, percent } from './values.ts';

/**
 * Priced lines (sku, description, quantity, unit price, discount), as quotes
 * and invoices hold them: their layout, their table, their running total.
 * Money is decimal (big.js), rounded half-up to cents.
 */

/** The running aggregate over a document's lines. */
export interface LineTotals {
  lineCount: number;
  /** Sum of the line totals that could be computed. */
  sum: Big;
  /** Lines whose total cannot be computed (a value breaks the layout): the subtotal is then unknown. */
  unknownLines: number;
}

// numeric(14,2)
const MAX_MONEY = new Big('1e12');

/** Rounded half-up to cents; null outside numeric(14,2). */
export function money(value: Big): Big | null {
  const rounded = value.round(2, Big.roundHalfUp);
  return rounded.abs().gte(MAX_MONEY) ? null : rounded;
}

// Multiplying by a hundredth is exact; big.js's division (by 100 here) is a long division, and was most of the time spent on totals.
const HUNDREDTH = new Big('0.01');

/** `value * (1 + pct/100)` (a negative pct takes off). */
export function plusPercent(value: Big, pct: number): Big {
  return value.times(new Big(100).plus(pct).times(HUNDREDTH));
}

/** round2(quantity * unitPrice * (1 - discountPct/100)), in decimal; null when a value is missing or broken. */
export function lineTotal(fields: Fields): Big | null {
  const { quantity, unitPrice, discountPct } = fields;
  if (typeof quantity !== 'number' || typeof unitPrice !== 'number' || typeof discountPct !== 'number') return null;
  return money(plusPercent(new Big(quantity).times(unitPrice), -discountPct));
}

/** The lines' subtotal, null when a line's total is unknown. */
export function subtotalOf(totals: LineTotals): Big | null {
  return totals.unknownLines > 0 ? null : money(totals.sum);
}

/** A priced document's subtotal and total (each kind computes its total from the subtotal its own way). */
export interface PricedTotals {
  subtotal: Big | null;
  total: Big | null;
}

/** The JSON form of a priced document: its header under `headerKey`, then notes, lines, comments and totals. */
export function renderPriced(headerKey: string, view: DocumentView<LineTotals>, { subtotal, total }: PricedTotals): Json {
  return {
    [headerKey]: view.header,
    notes: view.texts.notes ?? '',
    lines: view.members('lines').map((line) => line.fields),
    comments: view.members('comments').map((comment) => comment.fields),
    totals: { subtotal: subtotal?.toNumber() ?? null, total: total?.toNumber() ?? null },
  };
}

/** The columns a priced document's header table ends with: its notes, and its lines' count and totals. */
export const pricedSummaryColumns = { notes: 'text', line_count: 'integer', subtotal: 'numeric(14,2)', total: 'numeric(14,2)' } as const;

/** Those columns' values. */
export function pricedSummaryRow(view: HeaderView<LineTotals>, { subtotal, total }: PricedTotals): Record<keyof typeof pricedSummaryColumns, Json> {
  return { notes: view.texts.notes ?? '', line_count: view.totals.lineCount, subtotal: subtotal?.toFixed(2) ?? null, total: total?.toFixed(2) ?? null };
}

function countLine({ lineCount, sum, unknownLines }: LineTotals, member: Member, sign: 1 | -1): LineTotals {
  const total = lineTotal(member.fields);
  if (total === null) return { lineCount: lineCount + sign, sum, unknownLines: unknownLines + sign };
  return { lineCount: lineCount + sign, sum: sign === 1 ? sum.plus(total) : sum.minus(total), unknownLines };
}

/** Kept incrementally as lines come and go (DocumentKindModule.totals). */
export const lineTotals = {
  empty: (): LineTotals => ({ lineCount: 0, sum: new Big(0), unknownLines: 0 }),
  add: (totals: LineTotals, member: Member) => countLine(totals, member, 1),
  remove: (totals: LineTotals, member: Member) => countLine(totals, member, -1),
};

/** The `lines` collection, audited as `entity`; comments anchor a line as `line:<id>`. */
export function pricedLines(entity: Entity): CollectionLayout {
  return {
    entity,
    member: 'line',
    fields: {
      id: memberId,
      sku: optionalText,
      description: optionalText,
      quantity: amount.nullable().default(null),
      unitPrice: amount.nullable().default(null),
      discountPct: percent.default(0),
    },
  };
}

/** The lines' table, each row keyed by its document's id in `parentColumn`. */
export function pricedLineTable(name: string, parentColumn: string): TableSpec & { parentColumn: string } {
  return {
    name,
    parentColumn,
    key: [parentColumn, 'id'],
    columns: {
      [parentColumn]: 'text',
      id: 'text',
      position: 'integer',
      sku: 'text',
      description: 'text',
      quantity: 'numeric',
      unit_price: 'numeric',
      discount_pct: 'numeric',
      line_total: 'numeric(14,2)',
    },
  };
}

/** A line's table row (DocumentKindModule.memberRow). */
export function pricedLineRow(line: Member & { id: string }, position: number): Record<string, Json> {
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
}
