import { invoice } from './invoice.ts';
import type { DocumentKindModule } from './kind.ts';
import { quote } from './quote.ts';
import { report } from './report.ts';

/** Every document kind Concord serves; adding one is adding its module here. */
export const kinds = { quote, report, invoice } as const satisfies Record<string, DocumentKindModule<any>>;

/** A kind's module, with its totals type erased for code that handles every kind alike. */
export function kindOf(kind: keyof typeof kinds): DocumentKindModule<unknown> {
  return kinds[kind] as DocumentKindModule<unknown>;
}
