import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import type { Role } from '../auth/tokens.ts';
import type { Database } from '../db/database.ts';
import { fieldPolicyRows, lockFieldPolicy, replaceFieldPolicy } from '../db/field-policies.ts';
import { kinds } from '../documents/kinds.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';

/** The roles a field may be reserved for: the least role that may write it (`editor`: no restriction). */
export const policyRoles = ['editor', 'admin'] as const satisfies readonly Role[];

/** A tenant's field permissions: `<entity>.<field>` -> the least role that may write it. A field not named is open to editors. */
export type FieldPolicy = Readonly<Record<string, (typeof policyRoles)[number]>>;

/**
 * How old a tenant's policy grows before a read refreshes it (in the
 * background: a write never waits for it), so that every instance enforces a
 * change within a second while Postgres answers reads in under half of one.
 */
const REFRESH_AFTER_MS = 500;

/**
 * Every field a policy may name, `<entity>.<field>` across the kinds'
 * layouts: the header entity's fields and text roots, each collection
 * entity's fields and rich-text keys (`quote.discountPct`, `quote.notes`,
 * `quote_line.unitPrice`, `report_section.body`, `comment.body`).
 */
const fields: ReadonlySet<string> = new Set(
  Object.values(kinds).flatMap(({ layout }) => [
    ...[...Object.keys(layout.header.fields), ...layout.texts].map((key) => `${layout.header.entity}.${key}`),
    ...Object.values(layout.collections).flatMap((collection) =>
      [...Object.keys(collection.fields), ...Object.keys(collection.richText ?? {})].map((key) => `${collection.entity}.${key}`),
    ),
  ]),
);

export function knownFields(): ReadonlySet<string> {
  return fields;
}

/** A policy as an admin sends it (PUT /api/policies/fields): each key a known field, each value a policy role. */
export const fieldPolicySchema: z.ZodType<FieldPolicy> = z
  .record(z.string(), z.enum(policyRoles, { error: `expected ${policyRoles.map((role) => `"${role}"`).join(' or ')}` }))
  .superRefine((policy, context) => {
    for (const key of Object.keys(policy)) {
      if (!fields.has(key)) context.addIssue({ code: 'custom', path: [key], message: 'no document kind has this field (keys are <entity>.<field>, such as quote_line.unitPrice)' });
    }
  });

interface Cached {
  /** The last policy read (or written here); null until the first read succeeds. */
  policy: FieldPolicy | null;
  /** `performance.now()` when `policy` was current: the start of the read that got it, or the end of the write that set it. */
  currentAt: number;
  /** The read under way (which callers without a policy wait for). */
  reading: Promise<FieldPolicy> | null;
}

/**
 * Each tenant's field permissions (table `field_policies`), for the rule
 * check that runs on every write. A tenant's policy is read from Postgres at
 * most twice a second (concurrent callers share one read), in the background
 * once one was read: writes go on with the policy in hand, and a change made
 * on any instance is enforced on every instance within a second. Should
 * Postgres fail, the last policy read is used (and the failure logged) until a
 * read succeeds again.
 */
export class FieldPolicies {
  private readonly db: Database;
  private readonly log: Logger;
  private readonly byTenant = new Map<string, Cached>();

  constructor(db: Database, log: Logger) {
    this.db = db;
    this.log = log;
  }

  /** The tenant's policy (refreshed when half a second old); `storage-unavailable` only when none was ever read and Postgres fails. */
  async of(tenant: string): Promise<FieldPolicy> {
    const cached = this.cachedFor(tenant);
    if (cached.policy && performance.now() - cached.currentAt < REFRESH_AFTER_MS) return cached.policy;
    cached.reading ??= this.reread(tenant, cached);
    return cached.policy ?? cached.reading;
  }

  /** Replaces the tenant's whole policy; this instance enforces it at once, the others within a second. */
  async replace(tenant: string, policy: FieldPolicy, updatedBy: string): Promise<FieldPolicy> {
    const replaced = Object.freeze({ ...policy });
    await this.db.transaction(tenant, async (sql) => {
      await lockFieldPolicy(sql);
      await replaceFieldPolicy(sql, replaced, updatedBy);
    });
    const cached = this.cachedFor(tenant);
    cached.policy = replaced;
    cached.currentAt = performance.now();
    return replaced;
  }

  private cachedFor(tenant: string): Cached {
    let cached = this.byTenant.get(tenant);
    if (!cached) {
      cached = { policy: null, currentAt: 0, reading: null };
      this.byTenant.set(tenant, cached);
    }
    return cached;
  }

  private reread(tenant: string, cached: Cached): Promise<FieldPolicy> {
    const startedAt = performance.now();
    return this.db
      .single(tenant, fieldPolicyRows)
      .then(
        (rows) => {
          // A replacement made here after this read began is newer than what it read.
          if (startedAt >= cached.currentAt) {
            cached.policy = Object.freeze(Object.fromEntries(rows.map((row) => [row.field, row.role]))) as FieldPolicy;
            cached.currentAt = startedAt;
          }
          return cached.policy!;
        },
        (error: unknown) => {
          if (!cached.policy) throw new ConcordError('storage-unavailable', 'the field permissions could not be read from Postgres; try again shortly', { cause: error });
          this.log.warn({ err: error, code: 'field-policy-stale', tenant }, 'could not read the field permissions; the last ones read stay in force');
          // Tried again half a second later, not on every write meanwhile.
          cached.currentAt = performance.now();
          return cached.policy;
        },
      )
      .finally(() => (cached.reading = null));
  }
}
