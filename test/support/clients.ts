import { HocuspocusProvider, type HocuspocusProviderWebsocketConfiguration } from '@hocuspocus/provider';
import * as decoding from 'lib0/decoding';
import * as Y from 'yjs';

export interface Client {
  provider: HocuspocusProvider;
  doc: Y.Doc;
  /** The writes sent on the client's current socket and the server's answers to them. */
  writes: WriteCount;
  /** Stateless messages the server sent, parsed. */
  stateless: Array<Record<string, unknown>>;
  /** Close reasons the server sent for this document. */
  closeReasons: string[];
}

/** A provider for `name`; on `doc` when given (a replica kept while offline syncs what it holds). */
export function connect(url: string, name: string, token: string, doc = new Y.Doc()): Client {
  const client: Client = { doc, stateless: [], closeReasons: [], writes: { sent: 0, answered: 0, refused: 0 }, provider: undefined as never };
  // The provider hands its whole configuration to the socket it creates.
  const socket: Partial<HocuspocusProviderWebsocketConfiguration> = { WebSocketPolyfill: countingWebSocket(client) };
  client.provider = new HocuspocusProvider({
    url,
    name,
    token,
    document: doc,
    ...socket,
    onStateless: ({ payload }) => client.stateless.push(JSON.parse(payload)),
    onClose: ({ event }) => client.closeReasons.push(event.reason),
  });
  return client;
}

/** Counts on one socket: each write (sync step 2 or update) gets exactly one answer (SyncStatus). */
export interface WriteCount {
  sent: number;
  answered: number;
  /** Answers saying "not applied". */
  refused: number;
}

const SYNC = 0;
const SYNC_STEP_2 = 1;
const SYNC_UPDATE = 2;
const SYNC_STATUS = 8;

/**
 * A WebSocket that counts what its client wrote and what the server answered,
 * starting again on every new socket. The provider's own count
 * (unsyncedChanges) cannot be trusted across a reconnect: it restarts at 1 on
 * the new socket after having counted the writes it queued while offline, so
 * their answers bring it to 0 while later writes are still unanswered.
 */
function countingWebSocket(client: Client): typeof WebSocket {
  return class CountingWebSocket extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      const count: WriteCount = { sent: 0, answered: 0, refused: 0 };
      client.writes = count;
      this.addEventListener('message', ({ data }) => {
        if (!(data instanceof ArrayBuffer)) return;
        const decoder = decoding.createDecoder(new Uint8Array(data));
        decoding.readVarString(decoder);
        if (decoding.readVarUint(decoder) !== SYNC_STATUS) return;
        count.answered++;
        if (decoding.readVarInt(decoder) !== 1) count.refused++;
      });
      this.send = (frame) => {
        if (frame instanceof Uint8Array) {
          const decoder = decoding.createDecoder(frame);
          decoding.readVarString(decoder);
          if (decoding.readVarUint(decoder) === SYNC && [SYNC_STEP_2, SYNC_UPDATE].includes(decoding.readVarUint(decoder))) count.sent++;
        }
        super.send(frame);
      };
    }
  };
}

/** Polls `check` (which may be async) until it returns something truthy. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function synced(client: Client, timeoutMs?: number): Promise<true> {
  return waitFor('sync', () => client.provider.isSynced, timeoutMs);
}

/** Resolves when every local change has been acknowledged by the server: the provider says so, and every write on the current socket is answered. */
export function acknowledged(client: Client, timeoutMs?: number): Promise<true> {
  return waitFor(
    'acknowledgement',
    () => client.provider.isSynced && client.provider.unsyncedChanges === 0 && client.writes.answered === client.writes.sent,
    timeoutMs,
  );
}

/** The reason the server refused this document's authentication. */
export function refusal(url: string, name: string, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no refusal arrived')), 10_000);
    const provider = new HocuspocusProvider({
      url,
      name,
      token,
      document: new Y.Doc(),
      onAuthenticationFailed: ({ reason }) => {
        clearTimeout(timer);
        provider.destroy();
        resolve(reason);
      },
      onSynced: () => {
        clearTimeout(timer);
        provider.destroy();
        reject(new Error('the server accepted the connection'));
      },
    });
  });
}

/** Disconnects the provider and waits until it is really offline (a reconnect before that is lost). */
export async function goOffline(client: Client): Promise<void> {
  client.provider.disconnect();
  await waitFor('disconnected', () => client.provider.configuration.websocketProvider.status === 'disconnected');
}
