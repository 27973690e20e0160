/**
 * Every refusal has a stable machine-readable code (what a client switches on)
 * and a human message (what a person or the log reads). Hocuspocus sends an
 * error's `reason` to the provider, so the code travels as `reason` too.
 */
export const refusalCodes = {
  'bad-token': 401,
  'token-expired': 401,
  'wrong-tenant': 403,
  'not-allowed': 403,
  'read-only': 403,
  'bad-document-name': 400,
  'unknown-kind': 400,
  'bad-frame': 400,
  'bad-update': 400,
  'not-found': 404,
  'storage-unavailable': 503,
} as const;

export type RefusalCode = keyof typeof refusalCodes;

export class ConcordError extends Error {
  readonly code: RefusalCode;
  /** Read by Hocuspocus: the text the provider receives. */
  readonly reason: string;

  constructor(code: RefusalCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConcordError';
    this.code = code;
    this.reason = code;
  }

  get status(): number {
    return refusalCodes[this.code];
  }

  toJSON() {
    return { code: this.code, message: this.message };
  }
}
