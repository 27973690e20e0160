import type { DocumentName } from '../documents/name.ts';
import { completeTail, type Checkpoint, type CompactLog, type HistoryBounds, type LoadedLog, type LoggedUpdate, type NewUpdate, type Storage } from './storage.ts';

interface MemoryDocument {
  version: number;
  /** By seq; a pruned prefix is gone. */
  updates: Map<number, LoggedUpdate>;
  checkpoints: Map<number, Checkpoint>;
}

/**
 * The log in memory: `PostgresStorage`'s twin, held to the same contract
 * (test/storage.test.ts). Documents are kept per tenant, as Postgres's
 * row-level security keeps them.
 */
export class MemoryStorage implements Storage {
  private readonly documents = new Map<string, MemoryDocument>();

  async load(document: DocumentName, atSeq?: number): Promise<LoadedLog | null> {
    const found = this.find(document.tenant, document.name);
    if (!found) return null;
    const version = atSeq === undefined ? found.version : Math.min(atSeq, found.version);
    const checkpoint = withoutCompact(newestCheckpoint(found, version));
    return { version, checkpoint, tail: completeTail(document.name, checkpoint, version, updatesIn(found, checkpoint?.seq ?? 0, version)) };
  }

  async loadCompact(document: DocumentName, atSeq: number): Promise<CompactLog | null> {
    const found = this.find(document.tenant, document.name);
    if (!found) return null;
    const version = Math.min(atSeq, found.version);
    const newest = newestCheckpoint(found, version);
    if (newest && !newest.compact) return null;
    const checkpoint = newest && { seq: newest.seq, compact: newest.compact! };
    return { version, checkpoint, tail: completeTail(document.name, checkpoint, version, updatesIn(found, checkpoint?.seq ?? 0, version)) };
  }

  async append(tenant: string, updates: NewUpdate[]): Promise<number[]> {
    return updates.map(({ document, update }) => {
      const key = keyOf(tenant, document.name);
      const found = this.documents.get(key) ?? { version: 0, updates: new Map(), checkpoints: new Map() };
      this.documents.set(key, found);
      found.version += 1;
      found.updates.set(found.version, { seq: found.version, update });
      return found.version;
    });
  }

  async readUpdates(document: DocumentName, afterSeq: number, uptoSeq = Number.MAX_SAFE_INTEGER): Promise<LoggedUpdate[]> {
    const found = this.find(document.tenant, document.name);
    return found ? updatesIn(found, afterSeq, uptoSeq) : [];
  }

  async latestCheckpoint(document: DocumentName, atOrBeforeSeq = Number.MAX_SAFE_INTEGER): Promise<Checkpoint | null> {
    const found = this.find(document.tenant, document.name);
    return found ? withoutCompact(newestCheckpoint(found, atOrBeforeSeq)) : null;
  }

  async latestCheckpointSeq(document: DocumentName, atOrBeforeSeq: number): Promise<number | null> {
    return (await this.latestCheckpoint(document, atOrBeforeSeq))?.seq ?? null;
  }

  async writeCheckpoint(document: DocumentName, checkpoint: Checkpoint): Promise<void> {
    // Postgres keeps checkpoints of documents it holds only (a foreign key).
    const found = this.find(document.tenant, document.name);
    if (!found) throw new Error(`${document.name} does not exist: it has no log to checkpoint`);
    if (!found.checkpoints.has(checkpoint.seq)) found.checkpoints.set(checkpoint.seq, checkpoint);
  }

  async bounds(document: DocumentName): Promise<HistoryBounds | null> {
    const found = this.find(document.tenant, document.name);
    if (!found) return null;
    const firstSeq = found.updates.size === 0 ? 1 : Math.min(...found.updates.keys());
    return { latest: found.version, exactFrom: firstSeq > 1 ? firstSeq : 0 };
  }

  async prune(document: DocumentName, seq: number): Promise<number> {
    const found = this.find(document.tenant, document.name);
    if (!found?.checkpoints.has(seq)) return 0;
    let deleted = 0;
    for (const before of found.updates.keys()) if (before < seq && found.updates.delete(before)) deleted += 1;
    return deleted;
  }

  private find(tenant: string, name: string): MemoryDocument | undefined {
    return this.documents.get(keyOf(tenant, name));
  }
}

function keyOf(tenant: string, name: string): string {
  return `${tenant}\n${name}`;
}

function newestCheckpoint(document: MemoryDocument, atOrBeforeSeq: number): Checkpoint | null {
  let newest: Checkpoint | null = null;
  for (const checkpoint of document.checkpoints.values()) if (checkpoint.seq <= atOrBeforeSeq && (!newest || checkpoint.seq > newest.seq)) newest = checkpoint;
  return newest;
}

/** A checkpoint as a load reads it, as Postgres's does. */
function withoutCompact(checkpoint: Checkpoint | null): Checkpoint | null {
  return checkpoint && { seq: checkpoint.seq, state: checkpoint.state };
}

function updatesIn(document: MemoryDocument, afterSeq: number, uptoSeq: number): LoggedUpdate[] {
  return [...document.updates.values()].filter(({ seq }) => seq > afterSeq && seq <= uptoSeq).sort((a, b) => a.seq - b.seq);
}
