import { MessageType } from '@hocuspocus/server';
import * as decoding from 'lib0/decoding';

/** What a limit needs to know of one incoming frame. */
export type LimitedMessage =
  /** An awareness update, with the byte length of the largest client state (JSON) it carries. */
  | { kind: 'awareness'; largestStateBytes: number }
  | { kind: 'other' };

/**
 * Reads a raw frame (`<address><type>...`) just far enough for the limits,
 * without decoding any state: an awareness state's size is its length prefix.
 * A frame that cannot be read is `other` (refusing malformed frames is not a
 * limit's business).
 */
export function classifyMessage(frame: Uint8Array): LimitedMessage {
  try {
    const decoder = decoding.createDecoder(frame);
    decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    if (type === MessageType.Awareness) return { kind: 'awareness', largestStateBytes: largestState(decoding.readVarUint8Array(decoder)) };
    return { kind: 'other' };
  } catch {
    return { kind: 'other' };
  }
}

/** y-protocols' awareness update: `<count>` then `<clientID><clock><state JSON as a var string>` per client. */
function largestState(update: Uint8Array): number {
  const decoder = decoding.createDecoder(update);
  let largest = 0;
  for (let count = decoding.readVarUint(decoder); count > 0; count--) {
    decoding.readVarUint(decoder);
    decoding.readVarUint(decoder);
    largest = Math.max(largest, decoding.readVarUint8Array(decoder).byteLength);
  }
  return largest;
}
