import { z } from 'zod';
import type { CollectionLayout } from './layout.ts';
import { isoTime, memberId, optionalText, storableString, text } from './values.ts';

/** Comments look the same in every kind; `anchor` is `line:<id>`, `field:<key>` or `section:<id>`. */
export const comments: CollectionLayout = {
  entity: 'comment',
  fields: {
    id: memberId,
    authorId: optionalText,
    body: text.default(''),
    createdAt: isoTime.nullable().default(null),
    parentId: memberId.nullable().default(null),
    anchor: storableString.regex(/^(line|field|section):.{1,200}$/).nullable().default(null),
    resolved: z.boolean().default(false),
  },
};

