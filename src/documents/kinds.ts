import { ConcordError } from '../errors.ts';
import { invoice } from './invoice.ts';
import type { DocumentKindModule } from './kind.ts';
import { splitDocumentName, type DocumentName } from './name.ts';
import { quote } from './quote.ts';
import { report } from './report.ts';

/** Every document kind Concord serves; adding one is adding its module here. */
export const kinds = { quote, report, invoice } as const satisfies Record<string, DocumentKindModule<any>>;

export type DocumentKind = keyof typeof kinds;

/** A kind's module, with its totals type erased for code that handles every kind alike; `kind` comes from a parsed DocumentName. */
export function kindOf(kind: string): DocumentKindModule<unknown> {
  return kinds[kind as DocumentKind] as DocumentKindModule<unknown>;
}

function isKind(kind: string): kind is DocumentKind {
  return Object.hasOwn(kinds, kind);
}

/** Reads a document name from input: `bad-document-name` unless `<tenant>/<kind>/<id>`, `unknown-kind` unless a registered kind. */
export function parseDocumentName(name: string): DocumentName {
  const parsed = splitDocumentName(name);
  if (!parsed) {
    throw new ConcordError('bad-document-name', `"${name.slice(0, 200)}" is not <tenant>/<kind>/<id> (tenant and id: letters, digits, _ and -, at most 64)`);
  }
  if (!isKind(parsed.kind)) {
    throw new ConcordError('unknown-kind', `"${parsed.kind.slice(0, 64)}" is not a document kind (${Object.keys(kinds).join(', ')})`);
  }
  return parsed;
}
