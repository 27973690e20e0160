import { z } from 'zod';
import { kinds } from '../documents/kinds.ts';

export const presenceStatus = z.enum(['viewing', 'editing', 'idle']);

const focusField = z.string().max(256);

/** Every name a kind's collection gives its members (`line`, `section`), once. */
const memberNames = [...new Set(Object.values(kinds).flatMap((kind) => Object.values(kind.layout.collections).map((collection) => collection.member)))].filter((member) => member !== undefined);

/**
 * What a user works on, as its client declares it in the awareness `focus`:
 * a member of a collection (`{ lineId, field }`, `{ sectionId }`), or a header field.
 */
export const focusSchema = z.union([
  ...memberNames.map((member) => z.object({ [`${member}Id`]: focusField, field: focusField.optional() })),
  z.object({ field: focusField }),
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
