/**
 * Every error a client can see has a stable machine-readable code (what a
 * client switches on) and a human message (what a person or the log reads),
 * with the HTTP status it maps to. Hocuspocus sends an error's `reason` to the
 * provider, so the code travels as `reason` too.
 */
export const errorCodes = {
  'bad-token': 401,
  'token-expired': 401,
  'wrong-tenant': 403,
  'not-allowed': 403,
  'read-only': 403,
  'comments-only': 403,
  /** An update under a Yjs clientID that another user writes under. */
  'foreign-client': 403,
  'bad-request': 400,
  'bad-document-name': 400,
  'unknown-kind': 400,
  'bad-frame': 400,
  'bad-update': 400,
  /** A webhook URL on a loopback, private or other non-public address (unless WEBHOOK_ALLOW_PRIVATE), or one that does not resolve. */
  'bad-webhook-url': 400,
  /** A write to a document's content while its status freezes it (only comments stay open; only admins reopen). */
  'document-frozen': 409,
  /** A status change the document's kind does not allow. */
  'bad-transition': 409,
  /** A write touching a target (line, section, field) another user holds a lock on. */
  locked: 409,
  /** A value that breaks the kind's layout (a string quantity, a duplicate line id, ...). */
  'invalid-value': 400,
  /** A field the tenant's field permissions reserve for a higher role. */
  'field-not-allowed': 403,
  'not-found': 404,
  /** A past version whose updates retention deleted (HISTORY_RETENTION_DAYS). */
  pruned: 404,
  /** An events cursor from before the events retention pruned (EVENTS_RETENTION_DAYS). */
  'cursor-expired': 410,
  'too-large': 413,
  /** A request body that is not declared as JSON (`Content-Type: application/json`). */
  'unsupported-media-type': 415,
  /** A limit (docs/configuration.md) was reached; HTTP answers carry Retry-After. */
  'rate-limited': 429,
  'storage-unavailable': 503,
  'not-ready': 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof errorCodes;

/** What a refusal names besides its code and message: the fields a refused write touched, the lock and its holder. */
export interface ErrorDetails {
  fields?: string[];
  target?: string;
  holder?: { userId: string; name: string | null };
}

export class ConcordError extends Error {
  readonly code: ErrorCode;
  /** Read by Hocuspocus: the text the provider receives. */
  readonly reason: string;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: ErrorDetails }) {
    super(message, options);
    this.name = 'ConcordError';
    this.code = code;
    this.reason = code;
    this.details = options?.details ?? {};
  }

  get status(): number {
    return errorCodes[this.code];
  }

  /**
   * For closing one document's connection. The provider receives only the
   * reason; the code (4000 + the HTTP status) is for the server's own hooks.
   */
  get closeEvent(): { code: number; reason: string } {
    return { code: 4000 + this.status, reason: this.code };
  }

  toJSON() {
    return { code: this.code, message: this.message, ...this.details };
  }
}

/**
 * What a Hocuspocus hook throws to refuse, or to veto what Hocuspocus is
 * about to do (unload a document, say). Hocuspocus sends only `reason` to the
 * provider, and prints any thrown value that has a `message` with
 * console.error, beside the JSON line Concord logs: this one has none.
 */
export class HookRefusal {
  readonly reason: string;

  constructor(reason: string) {
    this.reason = reason;
  }
}

/** A refusal for Hocuspocus to pass on: the error's code (`internal` for anything but a ConcordError). */
export function hookRefusal(error: unknown): HookRefusal {
  return new HookRefusal(error instanceof ConcordError ? error.code : 'internal');
}
