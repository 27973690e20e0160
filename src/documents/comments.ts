import { z } from 'zod';
import type { CollectionLayout } from './layout.ts';
import { isoTime, memberId, optionalText, storableString, text } from './values.ts';

/** Most users one comment may mention (each gets a comment.mentioned event: a comment naming the whole tenant is no notification). */
export const MAX_MENTIONS = 50;

/**
 * Comments look the same in every kind; `anchor` is `field:<key>` or
 * `<member>:<id>` for a member of one of the kind's collections that names
 * its members (`line:<id>`).
 */
export function commentsOn(...anchored: CollectionLayout[]): CollectionLayout {
  const prefixes = ['field', ...anchored.map((collection) => collection.member).filter((member) => member !== undefined)];
  return {
    entity: 'comment',
    fields: {
      id: memberId,
      authorId: optionalText,
      body: text.default(''),
      createdAt: isoTime.nullable().default(null),
      parentId: memberId.nullable().default(null),
      anchor: storableString.regex(new RegExp(`^(${prefixes.join('|')}):.{1,200}$`)).nullable().default(null),
      resolved: z.boolean().default(false),
      // Who the comment notifies (one comment.mentioned event each); absent reads as null.
      mentions: z.array(memberId).max(MAX_MENTIONS).nullable().default(null),
    },
  };
}
