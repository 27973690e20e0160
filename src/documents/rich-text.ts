import * as Y from 'yjs';
import { toPgJson } from '../db/json.ts';
import type { Json } from '../json.ts';

interface ProseMirrorNode {
  type: string;
  attrs?: Record<string, Json>;
  content?: ProseMirrorNode[];
  text?: string;
  marks?: Array<{ type: string; attrs?: Record<string, Json> }>;
}

/**
 * A `Y.XmlFragment` as ProseMirror JSON, the way y-prosemirror lays it out:
 * elements are nodes (attributes are attrs), text carries its formatting
 * attributes as marks. Written here rather than imported so the server does
 * not load ProseMirror's view layer for 30 lines of format translation.
 * Attribute values become plain JSON (a BigInt as a string). Returns null for
 * a body nested deeper than any editor makes (a client sending garbage).
 */
export function fragmentToProseMirror(fragment: Y.XmlFragment): { type: 'doc'; content: ProseMirrorNode[] } | null {
  try {
    return { type: 'doc', content: fragment.toArray().flatMap((child) => toNodes(child, 0)) };
  } catch (error) {
    if (error instanceof TooDeep) return null;
    throw error;
  }
}

const MAX_DEPTH = 64;
class TooDeep extends Error {}

function toNodes(child: Y.XmlElement | Y.XmlText | Y.XmlHook, depth: number): ProseMirrorNode[] {
  if (depth > MAX_DEPTH) throw new TooDeep();
  if (child instanceof Y.XmlText) return textNodes(child);
  if (!(child instanceof Y.XmlElement)) return [];
  const node: ProseMirrorNode = { type: child.nodeName };
  const attrs = toPgJson(child.getAttributes()) as Record<string, Json>;
  if (Object.keys(attrs).length > 0) node.attrs = attrs;
  const content = child.toArray().flatMap((grandchild) => toNodes(grandchild, depth + 1));
  if (content.length > 0) node.content = content;
  return [node];
}

/**
 * Text runs with their marks. Adjacent runs with the same marks are one text
 * node, as ProseMirror holds them: Yjs splits its delta at every format mark
 * it keeps, even one that changes nothing.
 */
function textNodes(text: Y.XmlText): ProseMirrorNode[] {
  const nodes: ProseMirrorNode[] = [];
  for (const op of text.toDelta() as Array<{ insert: unknown; attributes?: Record<string, Record<string, Json> | null> }>) {
    if (typeof op.insert !== 'string') continue;
    const marks = Object.entries(op.attributes ?? {}).map(([type, markAttrs]) => {
      const attrs = toPgJson(markAttrs);
      return attrs && typeof attrs === 'object' && Object.keys(attrs).length > 0 ? { type, attrs: attrs as Record<string, Json> } : { type };
    });
    const last = nodes.at(-1);
    if (last && JSON.stringify(last.marks ?? []) === JSON.stringify(marks)) {
      last.text += op.insert;
      continue;
    }
    const node: ProseMirrorNode = { type: 'text', text: op.insert };
    if (marks.length > 0) node.marks = marks;
    nodes.push(node);
  }
  return nodes;
}

/** The plain text of ProseMirror JSON: text nodes joined, one line per block. */
export function proseMirrorText(node: ProseMirrorNode): string {
  if (node.text !== undefined) return node.text;
  if (node.type === 'hardBreak') return '\n';
  const children = node.content ?? [];
  const hasBlocks = children.some((child) => child.text === undefined && child.type !== 'hardBreak');
  return children.map(proseMirrorText).join(hasBlocks ? '\n' : '');
}

/** Fills an empty fragment with paragraphs, one per line of `text`. */
export function writeParagraphs(fragment: Y.XmlFragment, text: string): void {
  const paragraphs = text.split('\n').map((line) => {
    const paragraph = new Y.XmlElement('paragraph');
    if (line) paragraph.insert(0, [new Y.XmlText(line)]);
    return paragraph;
  });
  fragment.insert(0, paragraphs);
}
