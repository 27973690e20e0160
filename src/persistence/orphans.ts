import * as Y from 'yjs';
import type { DocumentName } from '../documents/name.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { DocumentStore } from './document-store.ts';
import type { UpdateLog } from './update-log.ts';

/** Logged as the author of recovered content: no token has an empty `sub`, and who wrote it is not known here. */
export const UNKNOWN_AUTHOR = '';

interface Watch {
  document: DocumentName;
  doc: Y.Doc;
  /** What the log lacked at the last check: logged at the next one if it still lacks it. */
  suspect: Uint8Array | null;
  /** Relayed content arrived after the last check took the document's state. */
  relayedSince: boolean;
  timer: NodeJS.Timeout;
}

/**
 * Content relayed from another instance is that instance's to log. Should it
 * die between relaying an update and committing it, the update lives on only
 * in the copies of the instances it reached, and in its author's replica,
 * which sees it acknowledged once it reconnects to one of them. So an instance
 * that received relayed content checks, a grace period later, that the log
 * holds everything its copy holds; what the log still lacks one more grace
 * period later (an update in flight at a live instance is committed within
 * milliseconds) is logged here, with no author. Checking and logging happen
 * under the document's row lock, so two instances never both log it.
 */
export class OrphanRecovery {
  private readonly watched = new Map<string, Watch>();
  private readonly store: DocumentStore;
  private readonly updateLog: UpdateLog;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly graceMs: number;

  constructor(store: DocumentStore, updateLog: UpdateLog, log: Logger, metrics: Metrics, graceMs: number) {
    this.store = store;
    this.updateLog = updateLog;
    this.log = log;
    this.metrics = metrics;
    this.graceMs = graceMs;
  }

  /** A relayed update changed `doc`: a check is due (one covers everything relayed until it runs). */
  relayed(document: DocumentName, doc: Y.Doc): void {
    const watching = this.watched.get(document.name);
    if (watching) {
      watching.relayedSince = true;
      return;
    }
    const watch: Watch = { document, doc, suspect: null, relayedSince: true, timer: undefined as never };
    this.watched.set(document.name, watch);
    this.schedule(watch);
  }

  forget(name: string): void {
    clearTimeout(this.watched.get(name)?.timer);
    this.watched.delete(name);
  }

  close(): void {
    for (const name of [...this.watched.keys()]) this.forget(name);
  }

  private schedule(watch: Watch): void {
    watch.timer = setTimeout(() => void this.check(watch), this.graceMs);
    watch.timer.unref();
  }

  private async check(watch: Watch): Promise<void> {
    const { document } = watch;
    watch.relayedSince = false;
    let failed = false;
    try {
      const state = Y.encodeStateAsUpdate(watch.doc);
      // This instance's own updates in `state` are in the log once these commits land.
      await this.updateLog.committedSoFar(document.name);
      if (watch.suspect) await this.recover(document, watch.suspect);
      watch.suspect = await this.store.unlogged(document, state);
    } catch (error) {
      this.metrics.persistenceErrors.inc({ operation: 'check-relayed' });
      this.log.warn({ err: error, code: 'relayed-check-failed', document: document.name }, 'could not check that relayed content is logged; checking again');
      failed = true;
    }
    if (this.watched.get(document.name) !== watch) return;
    if (failed || watch.suspect || watch.relayedSince) this.schedule(watch);
    else this.watched.delete(document.name);
  }

  private async recover(document: DocumentName, suspect: Uint8Array): Promise<void> {
    const seq = await this.store.logUnlogged(document, suspect, { userId: UNKNOWN_AUTHOR, origin: 'client' });
    if (seq === null) return;
    this.metrics.orphansRecovered.inc();
    this.log.warn(
      { code: 'orphan-recovered', document: document.name, seq },
      'logged content relayed by an instance that did not log it (it stopped first); its author is unknown',
    );
  }
}
