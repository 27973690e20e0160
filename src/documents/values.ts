import { z } from 'zod';

/** Postgres text refuses NUL and lone surrogates; such strings break the layout rather than fail a commit. */
const storable = (value: string) => !value.includes('\0') && value.isWellFormed();
export const text = z.string().max(100_000).refine(storable, 'contains NUL or a lone surrogate');
export const optionalText = text.nullable().default(null);
export const amount = z.number().min(0).max(1e12);
export const percent = z.number().min(0).max(100);
export const memberId = z.string().min(1).max(200).refine(storable, 'contains NUL or a lone surrogate');

/** `YYYY-MM-DD`, a real calendar day Postgres accepts. */
export const isoDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/)
  .refine((value) => {
    const day = new Date(`${value}T00:00:00Z`);
    return value >= '0001' && !Number.isNaN(day.getTime()) && day.toISOString().startsWith(value);
  }, 'not a calendar day');

/** `YYYY-MM`. */
export const isoMonth = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/);

export const isoTime = z.iso.datetime({ offset: true });
