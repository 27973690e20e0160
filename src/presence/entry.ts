import { z } from 'zod';

export const presenceStatus = z.enum(['viewing', 'editing', 'idle']);

/** What a user works on, as its client declares it in the awareness `focus`. */
export const focusSchema = z.union([
  z.object({ lineId: z.string().max(256), field: z.string().max(256) }),
  z.object({ sectionId: z.string().max(256) }),
  z.object({ field: z.string().max(256) }),
]);
export type Focus = z.infer<typeof focusSchema>;

/** A CSS hex colour (`#rgb`, `#rgba`, `#rrggbb`, `#rrggbbaa`): safe to put in any page's style. */
export const colorSchema = z.string().regex(/^#(?:[\da-f]{3,4}|[\da-f]{6}|[\da-f]{8})$/i);

/**
 * One user on one instance with a document open (several tabs are one entry):
 * what the presence route lists and what instances publish to each other.
 */
export const presenceEntrySchema = z.object({
  userId: z.string(),
  name: z.string(),
  status: presenceStatus,
  focus: focusSchema.nullable(),
  instance: z.string(),
  /** ISO time the user's first open connection to the document was made. */
  since: z.iso.datetime(),
  /** ISO time of the user's last edit or awareness change. */
  lastActiveAt: z.iso.datetime(),
});
export type PresenceEntry = z.infer<typeof presenceEntrySchema>;
