/**
 * A document's name, `<tenant>/<kind>/<id>`, read into its parts. It imports
 * nothing, so every layer may carry one; `parseDocumentName`
 * (src/documents/kinds.ts) makes one from input, checking the kind against
 * the registered kinds.
 */
export interface DocumentName {
  tenant: string;
  /** One of the registered kinds (src/documents/kinds.ts). */
  kind: string;
  id: string;
  /** `<tenant>/<kind>/<id>` */
  name: string;
}

/** A tenant or document id: letters, digits, `_` and `-`, at most 64, not starting with `_` or `-`. */
export const idPattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** The parts of `<tenant>/<kind>/<id>` with a well-formed tenant and id (the kind unchecked), or null. */
export function splitDocumentName(name: string): DocumentName | null {
  const parts = name.split('/');
  const [tenant, kind, id] = parts;
  if (parts.length !== 3 || !idPattern.test(tenant!) || !idPattern.test(id!)) return null;
  return { tenant: tenant!, kind: kind!, id: id!, name };
}
