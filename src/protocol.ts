import { MessageType } from '@hocuspocus/server';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { messageYjsSyncStep1, messageYjsSyncStep2, messageYjsUpdate } from 'y-protocols/sync';
import * as Y from 'yjs';
import { ConcordError } from './errors.ts';

// As lib0's readVarString decodes (what y-protocols reads awareness states with):
// invalid UTF-8 throws there, so it must be refused here, before Hocuspocus sees it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Auth message subtypes (AuthMessageType in @hocuspocus/common, which Concord does not depend on directly). */
export const AuthMessageType = { Token: 0, PermissionDenied: 1, Authenticated: 2 } as const;

/**
 * A client's Hocuspocus frame, fully read: `<address><type><payload>`. Only
 * the parts Concord acts on are kept; everything else was read to prove the
 * frame well formed.
 */
export interface Frame {
  address: string;
  type: number;
  /** A sync step 2 or update message: the client writes. */
  write?: ClientWrite;
  /** A sync step 1: the server answers with everything the sender's state vector lacks; `holdsNothing` when it is empty. */
  syncRequest?: { holdsNothing: boolean };
  /** An awareness update: the byte length of the largest client state (JSON) it carries. */
  largestAwarenessState?: number;
  /** An authentication message: the token it carries, not verified here. */
  token?: string;
}

/** A Yjs update a client sends, with its reach (read once, when the frame is). */
export interface ClientWrite {
  update: Uint8Array;
  reach: UpdateReach;
}

/** A frame refused before Hocuspocus sees it; `address` is set when the frame's document could be read. */
export class FrameRefusal extends ConcordError {
  readonly address: string | undefined;

  constructor(code: 'bad-frame' | 'bad-update', message: string, address: string | undefined, cause?: unknown) {
    super(code, message, { cause });
    this.address = address;
  }
}

// Frames are read once per message: the socket reads and validates each one
// before Hocuspocus handles it, and the hooks that get the same bytes back
// (beforeHandleMessage's `update`) find the result here.
const framesRead = new WeakMap<Uint8Array, Frame>();

/**
 * Reads and validates every part of a client's frame, as Hocuspocus 4.7 would
 * read it (MessageReceiver), so that a malformed one gets Concord's code
 * before Hocuspocus closes the connection with a generic one. Throws a
 * FrameRefusal: `bad-update` for an update that is not a Yjs update,
 * `bad-frame` for anything else that is not well formed, for message types
 * only the server sends, and for BroadcastStateless (server-internal).
 */
export function readFrame(bytes: Uint8Array): Frame {
  const known = framesRead.get(bytes);
  if (known) return known;
  const decoder = decoding.createDecoder(bytes);
  let address: string;
  try {
    address = decoding.readVarString(decoder);
  } catch (error) {
    throw new FrameRefusal('bad-frame', 'the message does not start with a readable document name', undefined, error);
  }
  const frame = readBody(decoder, address);
  if (decoding.hasContent(decoder)) throw new FrameRefusal('bad-frame', 'the message has bytes after its end', address);
  framesRead.set(bytes, frame);
  return frame;
}

function readBody(decoder: decoding.Decoder, address: string): Frame {
  const refuse = (what: string, cause?: unknown) => new FrameRefusal('bad-frame', what, address, cause);
  try {
    const type = decoding.readVarUint(decoder);
    switch (type) {
      case MessageType.Sync:
      case MessageType.SyncReply:
        return readSync(decoder, address, type);
      case MessageType.Awareness:
        return { address, type, largestAwarenessState: readAwarenessUpdate(decoding.readVarUint8Array(decoder)) };
      case MessageType.Auth: {
        const authType = decoding.readVarUint(decoder);
        if (authType !== AuthMessageType.Token) throw refuse(`a client sends only token authentication messages, not type ${authType}`);
        const token = decoding.readVarString(decoder);
        // Providers since 4.x add their version.
        if (decoding.hasContent(decoder)) decoding.readVarString(decoder);
        return { address, type, token };
      }
      case MessageType.Stateless:
        decoding.readVarString(decoder);
        return { address, type };
      case MessageType.QueryAwareness:
      case MessageType.CLOSE:
        return { address, type };
      case MessageType.BroadcastStateless:
        throw refuse('BroadcastStateless is sent between servers only; clients send Stateless');
      default:
        throw refuse(`message type ${type} is not one a client sends`);
    }
  } catch (error) {
    if (error instanceof FrameRefusal) throw error;
    throw refuse('the message is not a well-formed Hocuspocus frame', error);
  }
}

function readSync(decoder: decoding.Decoder, address: string, type: number): Frame {
  const step = decoding.readVarUint(decoder);
  if (step === messageYjsSyncStep1) {
    const clients = readStateVector(decoding.readVarUint8Array(decoder));
    return { address, type, syncRequest: { holdsNothing: clients === 0 } };
  }
  if (step !== messageYjsSyncStep2 && step !== messageYjsUpdate) {
    throw new FrameRefusal('bad-frame', `unknown sync message type ${step}`, address);
  }
  const update = decoding.readVarUint8Array(decoder);
  try {
    return { address, type, write: { update, reach: new UpdateReach(update) } };
  } catch (error) {
    throw new FrameRefusal('bad-update', 'the update is not a valid Yjs update; it was not applied', address, error);
  }
}

/** A state vector: a count, then that many (client, clock) pairs, and nothing after. */
/** Reads a state vector whole; returns how many clients it names. */
function readStateVector(bytes: Uint8Array): number {
  const decoder = decoding.createDecoder(bytes);
  const clients = decoding.readVarUint(decoder);
  for (let i = 0; i < clients; i++) {
    decoding.readVarUint(decoder);
    decoding.readVarUint(decoder);
  }
  if (decoding.hasContent(decoder)) throw new Error('bytes after the state vector');
  return clients;
}

/** An awareness update as y-protocols reads it: a count, then (client, clock, JSON state) triples, and nothing after; returns the largest state's bytes. */
function readAwarenessUpdate(bytes: Uint8Array): number {
  const decoder = decoding.createDecoder(bytes);
  const states = decoding.readVarUint(decoder);
  let largest = 0;
  for (let i = 0; i < states; i++) {
    decoding.readVarUint(decoder);
    decoding.readVarUint(decoder);
    const state = decoding.readVarUint8Array(decoder);
    largest = Math.max(largest, state.byteLength);
    JSON.parse(utf8.decode(state));
  }
  if (decoding.hasContent(decoder)) throw new Error('bytes after the awareness states');
  return largest;
}

/** What an update reaches and needs under one client. */
interface ClientReach {
  client: number;
  /** The end clock of its inserts and deletes; 0 if none. */
  end: number;
  /** The highest clock it needs present: its own structs, what its items refer to (origins, parents), what it deletes; -1 if none. */
  need: number;
  /** Its own structs as runs of consecutive clocks, start and end flat, ascending. */
  runs: number[];
}

/**
 * What a Yjs update reaches and needs, per client, read by fully decoding it
 * (so that garbage is refused before it reaches the document). Kept small
 * (plain arrays, no Maps): a write waiting behind others holds it.
 */
export class UpdateReach {
  private readonly clients: ClientReach[];
  /** How many ranges it deletes. */
  readonly deleteRanges: number;

  constructor(update: Uint8Array) {
    let decoded;
    try {
      decoded = Y.decodeUpdate(update);
    } catch (error) {
      throw new ConcordError('bad-update', 'the update is not a valid Yjs update; it was not applied', { cause: error });
    }
    const byClient = new Map<number, ClientReach>();
    const reachOf = (client: number): ClientReach => {
      let reach = byClient.get(client);
      if (!reach) byClient.set(client, (reach = { client, end: 0, need: -1, runs: [] }));
      return reach;
    };
    for (const struct of decoded.structs) {
      if (struct instanceof Y.Skip) continue;
      const { client, clock } = struct.id;
      const end = clock + struct.length;
      const reach = reachOf(client);
      reach.end = Math.max(reach.end, end);
      reach.need = Math.max(reach.need, end - 1);
      const { runs } = reach;
      if (runs.at(-1) === clock) runs[runs.length - 1] = end;
      else runs.push(clock, end);
      if (!(struct instanceof Y.Item)) continue;
      for (const id of [struct.origin, struct.rightOrigin, struct.parent]) {
        if (!(id instanceof Y.ID)) continue;
        // What an item refers to existed before it: a reference to its own client at or after its own
        // clock is no Yjs update, and Yjs throws on it while integrating (it checks only other clients).
        if (id.client === client && id.clock >= clock) {
          throw new ConcordError('bad-update', 'the update is not a valid Yjs update (an item refers to itself or to later content); it was not applied');
        }
        const referred = reachOf(id.client);
        referred.need = Math.max(referred.need, id.clock);
      }
    }
    let deleteRanges = 0;
    for (const [client, deletes] of decoded.ds.clients) {
      deleteRanges += deletes.length;
      const reach = reachOf(client);
      for (const deleted of deletes) {
        reach.end = Math.max(reach.end, deleted.clock + deleted.len);
        reach.need = Math.max(reach.need, deleted.clock + deleted.len - 1);
      }
    }
    this.clients = [...byClient.values()];
    this.deleteRanges = deleteRanges;
  }

  /**
   * The clients under which the update brings content `doc` does not hold
   * yet: what an owner check is about (see ClientOwners). Content the doc
   * holds (another user's structs a client received and sends back in a sync)
   * changes nothing, and deletions are not judged by client: a delete set
   * names the deleted item's client, not the deleter's.
   */
  newContentClients(doc: Y.Doc): number[] {
    return this.clients.filter(({ client, runs }) => (runs.at(-1) ?? 0) > Y.getState(doc.store, client)).map(({ client }) => client);
  }

  /** True if `doc` holds everything the update inserts and deletes (after an apply: nothing of it was parked). */
  heldBy(doc: Y.Doc): boolean {
    return this.clients.every(({ client, end }) => Y.getState(doc.store, client) >= end);
  }

  /**
   * True if applying the update to `doc` would integrate all of it: everything
   * it needs is in `doc` or in the update, reachable from `doc`'s state without
   * a gap. Otherwise Yjs parks (part of) it as pending until the rest arrives.
   */
  appliesTo(doc: Y.Doc): boolean {
    return this.clients.every(({ client, need, runs }) => {
      let reached = Y.getState(doc.store, client);
      for (let i = 0; i < runs.length; i += 2) if (runs[i]! <= reached) reached = Math.max(reached, runs[i + 1]!);
      return reached > need;
    });
  }
}

/**
 * The start of a frame, in or out: its address, type and, where there is one,
 * the number after the type (the sync step or auth message type). Undefined
 * if even that cannot be read. Nothing else is checked.
 */
export function readHeader(bytes: Uint8Array): { address: string; type: number; subtype?: number } | undefined {
  try {
    const decoder = decoding.createDecoder(bytes);
    const address = decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    return decoding.hasContent(decoder) ? { address, type, subtype: decoding.readVarUint(decoder) } : { address, type };
  } catch {
    return undefined;
  }
}

/**
 * The message type of a frame, read past its address without decoding it
 * (every frame the server sends passes here: a broadcast to fifty clients is
 * read fifty times), or undefined if it cannot be read.
 */
export function frameType(bytes: Uint8Array): number | undefined {
  try {
    const decoder = decoding.createDecoder(bytes);
    decoding.readVarUint8Array(decoder);
    return decoding.readVarUint(decoder);
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

/**
 * An update message: content the client applies. Not a sync step 2, which
 * would make a provider count itself synced.
 */
export function updateFrame(address: string, update: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarString(encoder, address);
  encoding.writeVarUint(encoder, MessageType.Sync);
  encoding.writeVarUint(encoder, messageYjsUpdate);
  encoding.writeVarUint8Array(encoder, update);
  return encoding.toUint8Array(encoder);
}
