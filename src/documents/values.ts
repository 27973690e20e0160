import { z } from 'zod';

/** Postgres text refuses NUL and lone surrogates; such strings break the layout rather than fail a commit. */
const storable = (value: string) => !value.includes('\0') && value.isWellFormed();
/** A string Postgres text can hold: every string that reaches SQL from outside is one. */
export const storableString = z.string().refine(storable, 'contains NUL or a lone surrogate');
export const text = storableString.max(100_000);
export const optionalText = text.nullable().default(null);
export const amount = z.number().min(0).max(1e12);
export const percent = z.number().min(0).max(100);
export const memberId = storableString.min(1).max(200);
/** An ISO 4217 code (`EUR`), or null. */
export const currencyCode = z.string().regex(/^[A-Z]{3}$/).nullable().default(null);

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

/** Postgres timestamps take years 1 to 9999 (an offset can carry a 0001 or 9999 time past either end). */
export function isPostgresTime(at: Date): boolean {
  const year = at.getUTCFullYear();
  return year >= 1 && year <= 9999;
}

/** An ISO time with offset, as the moment Postgres compares it as. */
export const postgresTime = isoTime.transform((value) => new Date(value)).refine(isPostgresTime, 'the year (in UTC) must be 0001 to 9999');
