import * as Y from 'yjs';

/**
 * Which user writes under which Yjs clientID, per loaded document. A clientID
 * is chosen by the client, so a commenter must not write under one that
 * another user writes under: the structs would collide with that user's next
 * ones and Yjs would drop or misplace them. Filled from every update the
 * server logs; a clientID seen before this load is claimed by whoever first
 * uses it here, if everything it wrote is a comment.
 */
export class ClientOwners {
  private readonly byDocument = new WeakMap<Y.Doc, Map<number, string>>();

  /** After a logged transaction: its new structs' clients are its author's. */
  record(doc: Y.Doc, transaction: Y.Transaction, userId: string): void {
    const owners = this.ownersOf(doc);
    for (const [client, after] of transaction.afterState) {
      if (after > (transaction.beforeState.get(client) ?? 0) && !owners.has(client)) owners.set(client, userId);
    }
  }

  /** Whether `userId` may write under `client`, claiming it when nobody has here. */
  mayUse(doc: Y.Doc, client: number, userId: string, onlyIn: string): boolean {
    const owners = this.ownersOf(doc);
    const owner = owners.get(client);
    if (owner !== undefined) return owner === userId;
    const structs = doc.store.clients.get(client);
    if (structs && !structs.every((struct) => struct instanceof Y.Item && rootKeyOf(struct) === onlyIn)) return false;
    owners.set(client, userId);
    return true;
  }

  private ownersOf(doc: Y.Doc): Map<number, string> {
    let owners = this.byDocument.get(doc);
    if (!owners) {
      owners = new Map();
      this.byDocument.set(doc, owners);
    }
    return owners;
  }
}

function rootKeyOf(item: Y.Item): string {
  let type = item.parent as Y.AbstractType<any>;
  while (type._item) type = type._item.parent as Y.AbstractType<any>;
  return Y.findRootTypeKey(type);
}
