import { z } from 'zod';
import { commentsOn } from './comments.ts';
import type { DocumentKindModule } from './kind.ts';
import type { CollectionLayout } from './layout.ts';
import { isoMonth, memberId, optionalText } from './values.ts';

export const reportStatuses = ['draft', 'in_review', 'approved'] as const;

const sections: CollectionLayout = { entity: 'report_section', member: 'section', fields: { id: memberId, title: optionalText }, richText: { body: 'text' } };

/** A project's monthly report: `<tenant>/report/<id>`; each section body is rich text a Tiptap editor binds to. */
export const report: DocumentKindModule<null> = {
  layout: {
    header: {
      key: 'report',
      entity: 'report',
      fields: {
        title: optionalText,
        projectId: optionalText,
        period: isoMonth.nullable().default(null),
        status: z.enum(reportStatuses).default('draft'),
      },
    },
    texts: [],
    collections: { sections, comments: commentsOn(sections) },
  },
  tableCollection: 'sections',
  // A report is approved only after review.
  workflow: {
    field: 'status',
    transitions: { draft: ['in_review'], in_review: ['draft', 'approved'], approved: ['in_review', 'draft'] },
    frozen: new Set(['approved']),
  },

  totals: { empty: () => null, add: () => null, remove: () => null },

  render(view) {
    return {
      report: view.header,
      sections: view.members('sections').map((section) => section.fields),
      comments: view.members('comments').map((comment) => comment.fields),
    };
  },

  tables: {
    header: {
      name: 'reports',
      key: ['id'],
      columns: { id: 'text', title: 'text', project_id: 'text', period: 'text', status: 'text' },
    },
    members: {
      name: 'report_sections',
      parentColumn: 'report_id',
      key: ['report_id', 'id'],
      columns: { report_id: 'text', id: 'text', position: 'integer', title: 'text', body: 'jsonb', text: 'text' },
    },
  },

  headerRow({ id, header }) {
    return { id, title: header.title!, project_id: header.projectId!, period: header.period!, status: header.status! };
  },

  memberRow(section, position) {
    const { fields } = section;
    return { id: section.id, position, title: fields.title!, body: fields.body!, text: fields.text! };
  },
};
