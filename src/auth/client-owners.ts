import { randomInt } from 'node:crypto';
import * as Y from 'yjs';
import { claimKey, type ClientOwner } from '../db/client-owners.ts';
import type { DocumentName } from '../documents/name.ts';
import { ConcordError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { PostgresDocuments } from '../storage/postgres-documents.ts';
import { within } from '../timeouts.ts';

export type { ClientOwner };

// A claim waits this long for Postgres; then it holds on this instance until the commit that logs its update writes it.
const CLAIM_WAIT_MS = 1_000;
// Fresh clientIDs drawn for server-side edits before giving up (each collides with a used one with odds ~ used/2^32).
const MAX_DRAWS = 8;

interface Known extends ClientOwner {
  /** The claim is in Postgres; otherwise it was made here while Postgres did not answer. */
  durable: boolean;
}

/**
 * Which user writes under which Yjs clientID, per document (table
 * `document_clients`). A clientID is chosen by the client, so no user may
 * write new content under one another user writes under: the structs would
 * collide with that user's next ones, and Yjs would keep one and drop the
 * other. A clientID belongs to the first user who writes under it, for good;
 * Postgres decides between two instances claiming it at once. An owner, once
 * known, never changes, so owners are cached per loaded document; a clientID
 * not known to be owned is always claimed through Postgres. While Postgres
 * does not answer, a claim holds on this instance and the commit that logs
 * its update writes it (see `unconfirmed`).
 */
export class ClientOwners {
  private readonly stored: PostgresDocuments;
  private readonly log: Logger;
  private readonly byDocument = new Map<string, Map<number, Known>>();
  /** Documents with claims made while Postgres did not answer. */
  private readonly withUnconfirmed = new Set<string>();
  /** Per loaded document: the clientID this instance's server-side edits write under, per caller and origin. */
  private readonly serverClients = new Map<string, Map<string, number>>();

  constructor(stored: PostgresDocuments, log: Logger) {
    this.stored = stored;
    this.log = log;
  }

  /** Learns a document's owners as it loads; should Postgres fail here, they are learned claim by claim. */
  async load(document: DocumentName): Promise<void> {
    try {
      const owners = await this.stored.clientOwners(document);
      const known = this.ownersOf(document.name);
      for (const [client, owner] of owners) known.set(client, { ...owner, durable: true });
    } catch (error) {
      this.log.warn({ err: error, code: 'client-owners-not-loaded', document: document.name }, 'could not read who writes under which clientID; each is claimed through Postgres');
    }
  }

  forget(name: string): void {
    this.byDocument.delete(name);
    this.serverClients.delete(name);
    this.withUnconfirmed.delete(name);
  }

  ownerOf(name: string, client: number): ClientOwner | undefined {
    return this.byDocument.get(name)?.get(client);
  }

  /**
   * The owner of each of `clients`, claiming for `owner` those nobody is known
   * to own. A clientID without an answer (Postgres answered without it) is
   * left out: the caller refuses it.
   */
  async claim(document: DocumentName, clients: number[], owner: ClientOwner): Promise<Map<number, ClientOwner>> {
    const known = this.ownersOf(document.name);
    const unknown = clients.filter((client) => !known.has(client));
    if (unknown.length > 0) {
      const claims = unknown.map((client) => ({ name: document.name, client, ...owner }));
      const claimed = await within(
        this.stored.claimClients(document.tenant, claims),
        CLAIM_WAIT_MS,
        () => null,
      ).catch(() => null);
      if (!claimed) this.log.warn({ code: 'client-claim-deferred', document: document.name, clients: unknown }, 'Postgres did not answer a clientID claim; the commit of the update writes it');
      for (const client of unknown) {
        const answer = claimed?.get(claimKey(document.name, client));
        // A rival claim made here meanwhile keeps its place: content under it may be applied already (its commit settles it).
        const local = known.get(client);
        const rivalHere = local !== undefined && !local.durable && (local.userId !== answer?.userId || local.origin !== answer?.origin);
        if (answer && !rivalHere) known.set(client, { ...answer, durable: true });
        else if (!claimed && !known.has(client)) known.set(client, { ...owner, durable: false });
      }
      if (!claimed) this.withUnconfirmed.add(document.name);
    }
    const owners = new Map<number, ClientOwner>();
    for (const client of clients) {
      const found = known.get(client);
      if (found) owners.set(client, { userId: found.userId, origin: found.origin });
    }
    return owners;
  }

  /** The clients of a logged update's content whose claims were made while Postgres did not answer: its commit writes them. */
  unconfirmed(name: string, update: Uint8Array): Array<{ client: number; owner: ClientOwner }> {
    if (!this.withUnconfirmed.has(name)) return [];
    const known = this.byDocument.get(name);
    return structClients(update).flatMap((client) => {
      const claimed = known?.get(client);
      return claimed?.durable === false ? [{ client, owner: { userId: claimed.userId, origin: claimed.origin } }] : [];
    });
  }

  /** What Postgres holds for claims a commit wrote: the owner of each clientID. */
  confirmed(name: string, owners: Map<number, ClientOwner>): void {
    const known = this.byDocument.get(name);
    if (!known) return;
    for (const [client, owner] of owners) known.set(client, { ...owner, durable: true });
    if ([...known.values()].every((owner) => owner.durable)) this.withUnconfirmed.delete(name);
  }

  /**
   * The clientID server-side edits of `owner` write under on this loaded
   * document: drawn fresh (one no client has written under or owns), claimed
   * for the caller with the edit's origin, and reused by their later edits
   * while the document stays loaded here. Never a client's: a server-side
   * edit under a clientID a client writes under would collide with its next
   * update.
   */
  async serverClient(document: DocumentName, doc: Y.Doc, owner: ClientOwner): Promise<number> {
    const mine = this.serverClients.get(document.name) ?? new Map<string, number>();
    this.serverClients.set(document.name, mine);
    const key = `${owner.origin}/${owner.userId}`;
    const reused = mine.get(key);
    if (reused !== undefined) return reused;
    for (let draw = 0; draw < MAX_DRAWS; draw++) {
      const client = randomInt(0, 2 ** 32);
      if (this.ownersOf(document.name).has(client) || doc.store.clients.has(client)) continue;
      const got = (await this.claim(document, [client], owner)).get(client);
      if (got?.userId === owner.userId && got.origin === owner.origin) {
        mine.set(key, client);
        return client;
      }
    }
    throw new ConcordError('internal', 'could not find a free clientID for a server-side edit');
  }

  private ownersOf(name: string): Map<number, Known> {
    let owners = this.byDocument.get(name);
    if (!owners) {
      owners = new Map();
      this.byDocument.set(name, owners);
    }
    return owners;
  }
}

/** The clients an update carries content (items or gc'd ranges) of. */
export function structClients(update: Uint8Array): number[] {
  return [...new Set(decode(update).structs.filter((struct) => !(struct instanceof Y.Skip)).map((struct) => struct.id.client))];
}

/** Whether everything `doc` holds under `client` sits in the root `rootKey` (a commenter may claim such an unowned clientID). */
export function wroteOnlyUnder(doc: Y.Doc, client: number, rootKey: string): boolean {
  const structs = doc.store.clients.get(client) ?? [];
  return structs.every((struct) => struct instanceof Y.Item && rootKeyOf(struct) === rootKey);
}

function decode(update: Uint8Array): ReturnType<typeof Y.decodeUpdate> {
  try {
    return Y.decodeUpdate(update);
  } catch (error) {
    throw new ConcordError('bad-update', 'the update is not a valid Yjs update; it was not applied', { cause: error });
  }
}

function rootKeyOf(item: Y.Item): string {
  let type = item.parent as Y.AbstractType<any>;
  while (type._item) type = type._item.parent as Y.AbstractType<any>;
  return Y.findRootTypeKey(type);
}
