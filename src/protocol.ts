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
 * What a Yjs update reaches and needs, per client, read by fully decoding it
 * (so that garbage is refused before it reaches the document).
 */
export class UpdateReach {
  /** The end clock of its inserts and deletes. */
  private readonly ends = new Map<number, number>();
  /** The highest clock it needs present: its own structs, what its items refer to (origins, parents), what it deletes. */
  private readonly needs = new Map<number, number>();
  /** Its own structs as runs of consecutive clocks [start, end), ascending. */
  private readonly runs = new Map<number, Array<[number, number]>>();
  /** How many ranges it deletes. */
  deleteRanges = 0;

  constructor(update: Uint8Array) {
    let decoded;
    try {
      decoded = Y.decodeUpdate(update);
    } catch (error) {
      throw new ConcordError('bad-update', 'the update is not a valid Yjs update; it was not applied', { cause: error });
    }
    for (const struct of decoded.structs) {
      if (struct instanceof Y.Skip) continue;
      const { client, clock } = struct.id;
      const end = clock + struct.length;
      raise(this.ends, client, end);
      raise(this.needs, client, end - 1);
      const runs = this.runs.get(client) ?? [];
      const last = runs.at(-1);
      if (last && last[1] === clock) last[1] = end;
      else runs.push([clock, end]);
      this.runs.set(client, runs);
      if (!(struct instanceof Y.Item)) continue;
      for (const id of [struct.origin, struct.rightOrigin, struct.parent]) {
        if (id instanceof Y.ID) raise(this.needs, id.client, id.clock);
      }
    }
    for (const [client, deletes] of decoded.ds.clients) {
      this.deleteRanges += deletes.length;
      for (const deleted of deletes) {
        raise(this.ends, client, deleted.clock + deleted.len);
        raise(this.needs, client, deleted.clock + deleted.len - 1);
      }
    }
  }

  /** True if `doc` holds everything the update inserts and deletes (after an apply: nothing of it was parked). */
  heldBy(doc: Y.Doc): boolean {
    for (const [client, end] of this.ends) if (Y.getState(doc.store, client) < end) return false;
    return true;
  }

  /**
   * True if applying the update to `doc` would integrate all of it: everything
   * it needs is in `doc` or in the update, reachable from `doc`'s state without
   * a gap. Otherwise Yjs parks (part of) it as pending until the rest arrives.
   */
  appliesTo(doc: Y.Doc): boolean {
    for (const [client, needed] of this.needs) {
      let reached = Y.getState(doc.store, client);
      for (const [start, end] of this.runs.get(client) ?? []) if (start <= reached) reached = Math.max(reached, end);
      if (reached <= needed) return false;
    }
    return true;
  }
}

function raise(clocks: Map<number, number>, client: number, clock: number): void {
  clocks.set(client, Math.max(clocks.get(client) ?? -1, clock));
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
