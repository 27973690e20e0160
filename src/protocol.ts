import { MessageType } from '@hocuspocus/server';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { messageYjsSyncStep2, messageYjsUpdate } from 'y-protocols/sync';
import * as Y from 'yjs';
import { ConcordError } from './errors.ts';

/** The parts of a Hocuspocus frame Concord looks at: `<address><type>[<sync step><update>]`. */
export interface Frame {
  address: string;
  type: number;
  /** A Yjs update carried by a sync step 2 or update message: the client writes. */
  update?: Uint8Array;
}

export function readFrame(bytes: Uint8Array): Frame {
  try {
    const decoder = decoding.createDecoder(bytes);
    const address = decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    if (type !== MessageType.Sync && type !== MessageType.SyncReply) return { address, type };
    const step = decoding.readVarUint(decoder);
    const carriesUpdate = step === messageYjsSyncStep2 || step === messageYjsUpdate;
    return carriesUpdate ? { address, type, update: decoding.readVarUint8Array(decoder) } : { address, type };
  } catch (error) {
    throw new ConcordError('bad-frame', 'the message is not a well-formed Hocuspocus frame', { cause: error });
  }
}

/**
 * Fully decodes a Yjs update, so that garbage is refused before it reaches the
 * document, and returns how far it reaches per client (the end clock of its
 * inserts and deletes): a document whose state vector is short of that after
 * the apply has parked part of the update for missing dependencies.
 */
export function readUpdateReach(update: Uint8Array): Map<number, number> {
  let decoded;
  try {
    decoded = Y.decodeUpdate(update);
  } catch (error) {
    throw new ConcordError('bad-update', 'the update is not a valid Yjs update; it was not applied', { cause: error });
  }
  const reach = new Map<number, number>();
  const extend = (client: number, end: number) => reach.set(client, Math.max(reach.get(client) ?? 0, end));
  for (const struct of decoded.structs) {
    if (!(struct instanceof Y.Skip)) extend(struct.id.client, struct.id.clock + struct.length);
  }
  for (const [client, deletes] of decoded.ds.clients) {
    for (const deleted of deletes) extend(client, deleted.clock + deleted.len);
  }
  return reach;
}

/** True if `doc` holds everything `reach` (from readUpdateReach) refers to. */
export function holdsAll(doc: Y.Doc, reach: Map<number, number>): boolean {
  const state = Y.decodeStateVector(Y.encodeStateVector(doc));
  for (const [client, end] of reach) if ((state.get(client) ?? 0) < end) return false;
  return true;
}

/** The message type of an outgoing frame, or undefined if it cannot be read. */
export function outgoingType(bytes: Uint8Array): { address: string; type: number } | undefined {
  try {
    const decoder = decoding.createDecoder(bytes);
    const address = decoding.readVarString(decoder);
    return { address, type: decoding.readVarUint(decoder) };
  } catch {
    return undefined;
  }
}

/** A SyncStatus frame: the answer to one write, applied or not. */
export function syncStatusFrame(address: string, applied: boolean): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarString(encoder, address);
  encoding.writeVarUint(encoder, MessageType.SyncStatus);
  encoding.writeVarUint(encoder, applied ? 1 : 0);
  return encoding.toUint8Array(encoder);
}
