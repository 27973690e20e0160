import { ConcordError } from '../errors.ts';
import { kinds } from './kinds.ts';

export type DocumentKind = keyof typeof kinds;
export const documentKinds = Object.keys(kinds) as DocumentKind[];

export interface DocumentName {
  tenant: string;
  kind: DocumentKind;
  id: string;
  /** `<tenant>/<kind>/<id>` */
  name: string;
}

/** A tenant or document id: letters, digits, `_` and `-`, at most 64, not starting with `_` or `-`. */
export const idPattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

function isKind(kind: string): kind is DocumentKind {
  return (documentKinds as readonly string[]).includes(kind);
}

export function parseDocumentName(name: string): DocumentName {
  const parts = name.split('/');
  const [tenant, kind, id] = parts;
  if (parts.length !== 3 || !idPattern.test(tenant!) || !idPattern.test(id!)) {
    throw new ConcordError('bad-document-name', `"${name.slice(0, 200)}" is not <tenant>/<kind>/<id> (tenant and id: letters, digits, _ and -, at most 64)`);
  }
  if (!isKind(kind!)) {
    throw new ConcordError('unknown-kind', `"${kind!.slice(0, 64)}" is not a document kind (${documentKinds.join(', ')})`);
  }
  return { tenant: tenant!, kind, id: id!, name };
}
