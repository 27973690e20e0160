/**
 * A kind's statuses (a header field): which status may follow which, and
 * which statuses freeze the content. A frozen document takes comments and, from
 * an admin, a status change that reopens it; nothing else (src/rules/).
 */
export interface Workflow {
  /** The header field holding the status. */
  field: string;
  /** For each status, the statuses it may change to. */
  transitions: Readonly<Record<string, readonly string[]>>;
  frozen: ReadonlySet<string>;
}
