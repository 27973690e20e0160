import * as encoding from 'lib0/encoding';

/** Raw Hocuspocus frames, for clients that misbehave on purpose. */

/** A frame for `document` of message `type`, its payload written by `body`. */
export function frame(document: string, type: number, body: (encoder: encoding.Encoder) => void = () => {}): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarString(encoder, document);
  encoding.writeVarUint(encoder, type);
  body(encoder);
  return encoding.toUint8Array(encoder);
}

export function authFrame(document: string, token: string): Uint8Array {
  return frame(document, 2, (encoder) => {
    encoding.writeVarUint(encoder, 0); // Token
    encoding.writeVarString(encoder, token);
  });
}

export function updateFrame(document: string, update: Uint8Array): Uint8Array {
  return syncFrame(document, 2, update);
}

/** A sync message: step 0 (sync step 1, a state vector), 1 (sync step 2) or 2 (update), with its payload. */
export function syncFrame(document: string, step: number, payload: Uint8Array): Uint8Array {
  return frame(document, 0, (encoder) => {
    encoding.writeVarUint(encoder, step);
    encoding.writeVarUint8Array(encoder, payload);
  });
}

export function truncatedSyncFrame(document: string): Uint8Array {
  return frame(document, 0); // Sync, then nothing
}

/** An awareness message carrying `update` (see awarenessUpdate). */
export function awarenessFrame(document: string, update: Uint8Array): Uint8Array {
  return frame(document, 1, (encoder) => encoding.writeVarUint8Array(encoder, update));
}

/** An awareness update as y-protocols encodes it; `state` is sent as given (JSON or not). */
export function awarenessUpdate(entries: Array<{ client: number; clock: number; state: string }>): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, entries.length);
  for (const { client, clock, state } of entries) {
    encoding.writeVarUint(encoder, client);
    encoding.writeVarUint(encoder, clock);
    encoding.writeVarString(encoder, state);
  }
  return encoding.toUint8Array(encoder);
}

export function statelessFrame(document: string, payload: string): Uint8Array {
  return frame(document, 5, (encoder) => encoding.writeVarString(encoder, payload));
}

export function queryAwarenessFrame(document: string): Uint8Array {
  return frame(document, 3);
}
