/**
 * A textarea bound to a Y.Text: each edit goes to the document as the one
 * stretch that changed (a delete and an insert), never as a replacement of the
 * whole text, so concurrent typing elsewhere in the text merges; someone
 * else's edit keeps this user's selection on the same characters.
 */
import type * as Y from 'yjs';

export function bindText(area: HTMLTextAreaElement, ytext: Y.Text, writable: boolean): () => void {
  const origin = { typing: area };
  area.readOnly = !writable;
  area.value = ytext.toString();
  const onInput = () => {
    const before = ytext.toString();
    const after = area.value;
    const { start, deleted, inserted } = textDifference(before, after);
    ytext.doc!.transact(() => {
      if (deleted > 0) ytext.delete(start, deleted);
      if (inserted) ytext.insert(start, inserted);
    }, origin);
  };
  // Someone else's edit: keep this user's selection where their text is.
  const onRemote = (event: Y.YTextEvent, transaction: Y.Transaction) => {
    if (transaction.origin === origin) return;
    let { selectionStart: start, selectionEnd: end } = area;
    let index = 0;
    for (const op of event.delta) {
      if (op.retain) index += op.retain;
      else if (typeof op.insert === 'string') {
        if (index < start) start += op.insert.length;
        if (index < end) end += op.insert.length;
        index += op.insert.length;
      } else if (op.delete) {
        start -= Math.max(0, Math.min(op.delete, start - index));
        end -= Math.max(0, Math.min(op.delete, end - index));
      }
    }
    const focused = document.activeElement === area;
    area.value = ytext.toString();
    if (focused) area.setSelectionRange(start, end);
  };
  area.addEventListener('input', onInput);
  ytext.observe(onRemote);
  return () => {
    area.removeEventListener('input', onInput);
    ytext.unobserve(onRemote);
  };
}

/** The one changed stretch between two strings, never splitting a surrogate pair. */
export function textDifference(before: string, after: string): { start: number; deleted: number; inserted: string } {
  const shorter = Math.min(before.length, after.length);
  let start = 0;
  while (start < shorter && before.charCodeAt(start) === after.charCodeAt(start)) start++;
  let end = 0;
  while (end < shorter - start && before.charCodeAt(before.length - 1 - end) === after.charCodeAt(after.length - 1 - end)) end++;
  if (start > 0 && isHighSurrogate(before.charCodeAt(start - 1))) start--;
  if (end > 0 && isLowSurrogate(before.charCodeAt(before.length - end))) end--;
  return { start, deleted: before.length - start - end, inserted: after.slice(start, after.length - end) };
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;
