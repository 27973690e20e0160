import type { Hocuspocus } from '@hocuspocus/server';
import * as Y from 'yjs';
import type { ClientOwners } from '../auth/client-owners.ts';
import type { Principal } from '../auth/tokens.ts';
import type { ServerEditContext } from '../context.ts';
import { ConcordError } from '../errors.ts';
import { within } from '../timeouts.ts';
import type { DocumentStore } from '../persistence/document-store.ts';
import { DocumentReader } from '../projection/view.ts';
import type { RuleBook } from '../rules/rulebook.ts';
import type { Json } from '../json.ts';
import { kindOf, kinds } from './kinds.ts';
import type { DocumentName } from './name.ts';
import { applyPatch, describeIssues, patchSchema } from './patch.ts';

export interface DocumentJson {
  name: string;
  version: number;
  content: Json;
}

// How long a PATCH waits for its commit (Postgres away) before answering 503.
const COMMIT_WAIT_MS = 10_000;

/** The edit is applied and queued either way; only the answer stops waiting. */
function withinCommitWait(committed: Promise<number>): Promise<number> {
  return within(committed, COMMIT_WAIT_MS, () => {
    throw new ConcordError('storage-unavailable', 'the edit was applied and will be committed once Postgres answers again; do not send it again');
  });
}

const patchSchemas = Object.fromEntries(Object.entries(kinds).map(([kind, module]) => [kind, patchSchema(module.layout)]));

/** A document in its JSON form (docs/documents.md). */
export function renderDocument(document: DocumentName, doc: Y.Doc): Json {
  return new DocumentReader(kindOf(document.kind), doc, document.id).render();
}

/** Reading and editing documents over HTTP: reads come from the log, edits go through Hocuspocus like a client's. */
export class DocumentService {
  private readonly hocuspocus: Hocuspocus;
  private readonly store: DocumentStore;
  private readonly clientOwners: ClientOwners;
  private readonly rules: RuleBook;

  constructor(hocuspocus: Hocuspocus, store: DocumentStore, clientOwners: ClientOwners, rules: RuleBook) {
    this.hocuspocus = hocuspocus;
    this.store = store;
    this.clientOwners = clientOwners;
    this.rules = rules;
  }

  /** The document as of its last committed update. */
  async read(document: DocumentName): Promise<DocumentJson> {
    const found = await this.store.read(document);
    if (!found) throw new ConcordError('not-found', `${document.kind}/${document.id} does not exist`);
    try {
      return { name: document.name, version: found.version, content: renderDocument(document, found.doc) };
    } finally {
      found.doc.destroy();
    }
  }

  /**
   * Applies a patch as one server-side transaction: connected clients receive
   * it like any edit, and it is logged (origin `api`, the caller as author),
   * audited and projected. Answers once it is committed.
   */
  async patch(principal: Principal, document: DocumentName, body: unknown): Promise<DocumentJson> {
    const parsed = patchSchemas[document.kind]!.safeParse(body);
    if (!parsed.success) throw new ConcordError('bad-request', `the patch is not valid: ${describeIssues(parsed.error)}`);
    return this.edit(principal, document, { origin: 'api' }, (doc) => applyPatch(kindOf(document.kind).layout, doc, parsed.data));
  }

  /**
   * A server-side edit through a Hocuspocus direct connection: `change` runs in
   * one transaction on the live document, which becomes one update, logged
   * with `origin` and the caller as author, under a clientID of the caller's
   * server-side edits (never one a client writes under, see ClientOwners).
   * The business rules judge it as they judge a client's update: the edit is
   * made on a copy first, and its update is applied only if they allow it.
   * Answers with the document as the edit left it, once that is committed (an
   * edit that changed nothing answers the current version).
   */
  async edit(
    principal: Principal,
    document: DocumentName,
    how: Pick<ServerEditContext, 'origin' | 'restoredFrom'>,
    change: (doc: Y.Doc) => void,
  ): Promise<DocumentJson> {
    const context: ServerEditContext = { principal, ...how };
    const { origin } = how;
    const connection = await this.hocuspocus.openDirectConnection(document.name, context);
    try {
      const live = connection.document!;
      const client = await this.clientOwners.serverClient(document, live, { userId: principal.userId, origin });
      const { judge, endTurn } = await this.rules.judgeFor(principal, document);
      // From here to the transaction nothing awaits: the edit is judged against the document it applies to.
      try {
        const update = draftEdit(live, client, change);
        const refusal = update && judge(live, update);
        if (refusal) throw refusal;
        if (update) await connection.transact((doc) => Y.applyUpdate(doc, update));
      } finally {
        endTurn();
      }
      const content = renderDocument(document, connection.document!);
      const version = context.committed ? await withinCommitWait(context.committed) : await this.store.version(document);
      return { name: document.name, version, content };
    } finally {
      await connection.disconnect();
    }
  }
}

/** The update `change` makes, written under `client`, made on a copy of `doc` (null when it changes nothing). */
function draftEdit(doc: Y.Doc, client: number, change: (doc: Y.Doc) => void): Uint8Array | null {
  const copy = new Y.Doc({ gc: false });
  try {
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc));
    copy.clientID = client;
    let update: Uint8Array | null = null;
    copy.on('update', (made: Uint8Array) => {
      update = made;
    });
    copy.transact(() => change(copy));
    return update;
  } finally {
    copy.destroy();
  }
}
