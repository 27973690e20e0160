import { HocuspocusProvider } from '@hocuspocus/provider';
import * as Y from 'yjs';

export interface Client {
  provider: HocuspocusProvider;
  doc: Y.Doc;
  /** Stateless messages the server sent, parsed. */
  stateless: Array<Record<string, unknown>>;
  /** Close reasons the server sent for this document. */
  closeReasons: string[];
}

/** A provider for `name`; on `doc` when given (a replica kept while offline syncs what it holds). */
export function connect(url: string, name: string, token: string, doc = new Y.Doc()): Client {
  const client: Client = { doc, stateless: [], closeReasons: [], provider: undefined as never };
  client.provider = new HocuspocusProvider({
    url,
    name,
    token,
    document: doc,
    onStateless: ({ payload }) => client.stateless.push(JSON.parse(payload)),
    onClose: ({ event }) => client.closeReasons.push(event.reason),
  });
  return client;
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

/** Resolves when every local change has been acknowledged by the server. */
export function acknowledged(client: Client, timeoutMs?: number): Promise<true> {
  return waitFor('acknowledgement', () => client.provider.isSynced && client.provider.unsyncedChanges === 0, timeoutMs);
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
