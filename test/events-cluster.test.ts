import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../src/events/event.ts';
import { acknowledged, waitFor } from './support/clients.ts';
import { clusterFixture } from './support/cluster.ts';
import { postgresTitle, postgresUrl } from './support/database.ts';
import { api } from './support/documents.ts';
import type { ServerProcess } from './support/server.ts';
import { token } from './support/tokens.ts';

const cluster = clusterFixture();

async function page(server: ServerProcess, query: string) {
  return api(server.httpUrl, await token({ sub: 'ada', role: 'admin' }), 'GET', `/api/events?${query}`);
}

describe.skipIf(!postgresUrl)(postgresTitle('change events on several instances'), () => {
  it('a cursor kept while two instances commit concurrently misses nothing and sees nothing twice', async () => {
    const { servers, storage } = await cluster.start([{ EVENTS_POLL_MS: '100' }, { EVENTS_POLL_MS: '100' }]);
    const writers = await Promise.all(
      [0, 1, 2, 3].map((index) => cluster.open(servers[index % 2]!, `acme/quote/concurrent-${index}`, `writer-${index}`)),
    );
    let writing = true;
    const seen: ChangeEvent[] = [];
    // Reads small pages from both instances in turn while the commits go on.
    const reading = (async () => {
      let next = 0;
      for (let turn = 0; writing || turn % 2 === 1; turn += 1) {
        const answer = await page(servers[turn % 2]!, `after=${next}&limit=7`);
        expect(answer.status).toBe(200);
        seen.push(...answer.body.events);
        next = answer.body.next;
      }
      for (;;) {
        const answer = await page(servers[0]!, `after=${next}&limit=100`);
        if (answer.body.events.length === 0) return;
        seen.push(...answer.body.events);
        next = answer.body.next;
      }
    })();
    await Promise.all(
      writers.map(async (writer, index) => {
        for (let edit = 0; edit < 60; edit += 1) {
          writer.doc.getMap('quote').set('title', `writer ${index} edit ${edit}`);
          if (edit % 3 === 0) await acknowledged(writer);
        }
        await acknowledged(writer);
      }),
    );
    writing = false;
    await reading;

    const db = new pg.Client({ connectionString: storage.databaseUrl });
    await db.connect();
    try {
      await db.query(`SELECT set_config('role', 'concord_app', false), set_config('app.tenant_id', 'acme', false)`);
      const stored = (await db.query<{ id: string }>('SELECT id FROM change_events ORDER BY position')).rows.map((row) => row.id);
      expect(stored.length).toBeGreaterThanOrEqual(4 * 20);
      expect(seen.map((event) => event.id)).toEqual(stored);
      // Per document, the covering events' seq ranges follow each other with none missing (a commit's consecutive updates share one).
      for (const index of [0, 1, 2, 3]) {
        const ranges = seen.filter((event) => event.document.id === `concurrent-${index}`).map((event) => event.seq);
        const seqs = ranges.flatMap(([first, last]) => Array.from({ length: last - first + 1 }, (_, at) => first + at));
        expect(seqs).toEqual(seqs.map((_, at) => at + 1));
        expect(seqs.length).toBeGreaterThanOrEqual(60);
      }
    } finally {
      await db.end();
    }
  });

  it('prunes events older than EVENTS_RETENTION_DAYS at start; a cursor from before them gets 410 cursor-expired, a fresh read starts after them', async () => {
    const { servers, storage } = await cluster.start([{ EVENTS_RETENTION_DAYS: '30' }]);
    const writer = await cluster.open(servers[0]!, 'acme/quote/aged', 'old-timer');
    for (const title of ['one', 'two', 'three', 'four']) {
      writer.doc.getMap('quote').set('title', title);
      await acknowledged(writer);
    }
    writer.provider.destroy();
    const before = (await page(servers[0]!, 'after=0&limit=100')).body.events as ChangeEvent[];
    expect(before.map((event) => event.seq[0])).toEqual([1, 2, 3, 4]);
    await servers[0]!.stop();

    // The first two events are made 40 days old (as the owner, past RLS for this test only).
    const db = new pg.Client({ connectionString: storage.databaseUrl });
    await db.connect();
    try {
      await db.query('BEGIN');
      await db.query('ALTER TABLE change_events NO FORCE ROW LEVEL SECURITY');
      await db.query(`UPDATE change_events SET occurred_at = now() - interval '40 days' WHERE position <= $1`, [before[1]!.position]);
      await db.query('ALTER TABLE change_events FORCE ROW LEVEL SECURITY');
      await db.query('COMMIT');
    } finally {
      await db.end();
    }
    await servers[0]!.start();
    const expired = await waitFor('the pruning pass', async () => {
      const answer = await page(servers[0]!, 'after=0');
      return answer.status === 410 && answer;
    });
    expect(expired.body.error.code).toBe('cursor-expired');
    const fresh = await page(servers[0]!, 'limit=100');
    expect(fresh.status).toBe(200);
    expect(fresh.body.events.map((event: ChangeEvent) => event.id)).toEqual(before.slice(2).map((event) => event.id));
    expect((await page(servers[0]!, `after=${before[1]!.position}`)).status).toBe(200);
  });
});
