import type { z } from 'zod';
import type { Json } from '../json.ts';

export type Fields = Record<string, Json>;

/** What an audit row (`field_changes.entity`) is about (`quote`, `quote_line`, `comment`, ...); each kind names its own. */
export type Entity = string;

/**
 * How a document kind lays out its Yjs doc: one header `Y.Map`, plain-text
 * `Y.Text` fields and `Y.Array`s of `Y.Map` members. Each field has a zod
 * schema; a value that fails it reads as null (a layout violation). Reading
 * `undefined` through the schema gives the field's default, if it has one.
 */
export interface Layout {
  header: { key: string; entity: Entity; fields: Record<string, z.ZodType<Json>> };
  /** Root `Y.Text` keys; each is a field of the header entity. */
  texts: readonly string[];
  collections: Record<string, CollectionLayout>;
}

export interface CollectionLayout {
  entity: Entity;
  /** What one member is called where it is pointed at: a comment's anchor `<member>:<id>`, a presence focus `<member>Id`. */
  member?: string;
  fields: Record<string, z.ZodType<Json>>;
  /** Keys holding a `Y.XmlFragment` (read as ProseMirror JSON), each with the field that gets its plain text. */
  richText?: Record<string, string>;
}

/** A collection member as read: its id (null if it has no usable one) and its fields. */
export interface Member {
  id: string | null;
  fields: Fields;
}
