import type { Document } from '@hocuspocus/server';
import type { Logger } from '../log.ts';
import type { PresenceEntry } from './entry.ts';
import { PresenceSessions } from './sessions.ts';

/** Where every instance publishes who has which document open, and reads the others'. */
export interface PresenceBoard {
  publish(documentName: string, entries: PresenceEntry[]): Promise<void>;
  /** What the other instances published for the document, as long as they keep it fresh. */
  others(documentName: string): Promise<PresenceEntry[]>;
  /** How long a publication stays listed: an instance that stops publishing drops off after this. */
  readonly ttlMs: number;
}

export interface PresenceList {
  users: PresenceEntry[];
  /** False when the other instances could not be asked (Redis away): `users` are this instance's only. */
  complete: boolean;
}

// Awareness changes come many per second; the board gets the latest after this pause.
const PUBLISH_DELAY_MS = 100;

/**
 * Presence across instances: this instance's sessions, live, plus what the
 * others published on the board. Without a board (one instance) the sessions
 * are the whole picture.
 */
export class Presence {
  readonly sessions: PresenceSessions;
  private readonly board: PresenceBoard | null;
  private readonly documentOf: (documentName: string) => Document | undefined;
  private readonly log: Logger;
  private readonly due = new Set<string>();
  private publishTimer: NodeJS.Timeout | undefined;
  private readonly refreshTimer: NodeJS.Timeout | undefined;

  constructor(options: {
    instance: string;
    idleMs: number;
    board: PresenceBoard | null;
    documentOf: (documentName: string) => Document | undefined;
    log: Logger;
  }) {
    this.board = options.board;
    this.documentOf = options.documentOf;
    this.log = options.log;
    this.sessions = new PresenceSessions(options.instance, options.idleMs, (documentName) => this.publishSoon(documentName));
    if (this.board) {
      // Keeps this instance listed, and lets statuses turn idle on the board too.
      this.refreshTimer = setInterval(() => this.sessions.documentNames().forEach((name) => this.publishSoon(name)), this.board.ttlMs / 3);
      this.refreshTimer.unref();
    }
  }

  async list(documentName: string): Promise<PresenceList> {
    const users = this.local(documentName);
    if (!this.board) return { users, complete: true };
    try {
      return { users: [...users, ...(await this.board.others(documentName))], complete: true };
    } catch (error) {
      this.log.warn({ err: error, code: 'presence-unavailable', document: documentName }, 'could not read the other instances\' presence');
      return { users, complete: false };
    }
  }

  /** Takes this instance's users off the board (shutting down). */
  async close(): Promise<void> {
    clearInterval(this.refreshTimer);
    clearTimeout(this.publishTimer);
    await Promise.allSettled(this.sessions.documentNames().map((name) => this.board?.publish(name, [])));
  }

  private local(documentName: string): PresenceEntry[] {
    return this.sessions.entries(documentName, this.documentOf(documentName));
  }

  private publishSoon(documentName: string): void {
    if (!this.board) return;
    this.due.add(documentName);
    this.publishTimer ??= setTimeout(() => this.publishDue(), PUBLISH_DELAY_MS);
  }

  private publishDue(): void {
    this.publishTimer = undefined;
    for (const name of this.due) {
      this.board!.publish(name, this.local(name)).catch((error: unknown) => {
        this.log.debug({ err: error, code: 'presence-publish-failed', document: name }, 'could not publish presence; the next refresh tries again');
      });
    }
    this.due.clear();
  }
}
