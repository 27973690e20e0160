import * as decoding from 'lib0/decoding';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { replay } from '../src/persistence/replay.ts';
import { acknowledged, waitFor } from './support/clients.ts';
import { clusterFixture } from './support/cluster.ts';
import { postgresTitle, postgresUrl } from './support/database.ts';
import { authFrame, syncFrame, updateFrame } from './support/frames.ts';
import { fieldChanges, loggedUpdates, openTestDatabase } from './support/inspect.ts';
import { token } from './support/tokens.ts';

const SYNC_STEP_1 = 0;

// Two instances share the log: that needs one PostgreSQL both reach.
describe.skipIf(!postgresUrl)(postgresTitle('a parked write whose gap the log fills'), () => {
  const fixture = clusterFixture();

  it('is logged under its sender and acknowledged once committed, also when what it lacked arrives as the log\'s own update (not a logged edit)', async () => {
    const { storage, redis, servers } = await fixture.start([{}, {}]);
    const [one, two] = servers as [NonNullable<(typeof servers)[0]>, NonNullable<(typeof servers)[1]>];
    const name = 'acme/quote/parked-from-log';
    const bob = await fixture.open(two, name, 'bob');
    const carol = await fixture.open(one, name, 'carol');
    bob.doc.getText('notes').insert(0, 'base');
    await acknowledged(bob);
    await waitFor('instance one has the base', () => carol.doc.getText('notes').toString() === 'base');

    // Without Redis, bob's next edit is logged by instance two and never relayed to instance one.
    await redis.stop();
    bob.doc.getText('notes').insert(4, ' more');
    await acknowledged(bob);

    // Alice's edit builds on it, under a clientID of her own: instance one parks it.
    const copy = new Y.Doc();
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(bob.doc));
    copy.clientID = 424_242;
    const before = Y.encodeStateVector(copy);
    copy.getText('notes').insert(9, '!');
    const write = Y.encodeStateAsUpdate(copy, before);

    const ws = new WebSocket(one.wsUrl);
    fixture.defer(() => ws.close());
    const answers: boolean[] = [];
    ws.on('message', (data: Buffer) => {
      const decoder = decoding.createDecoder(new Uint8Array(data));
      decoding.readVarString(decoder);
      if (decoding.readVarUint(decoder) === 8) answers.push(decoding.readVarUint(decoder) === 1);
    });
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(authFrame(name, await token({ sub: 'alice' })));
    ws.send(updateFrame(name, write));
    // Her sync request (handled after the write) brings instance one up to the log: the write applies with the log's update.
    ws.send(syncFrame(name, SYNC_STEP_1, Y.encodeStateVector(new Y.Doc())));
    await waitFor('the write answered', () => answers.length > 0, 30_000);
    expect(answers).toEqual([true]);

    const db = await openTestDatabase(storage);
    fixture.defer(() => db.close());
    const logged = await loggedUpdates(db, 'acme', name);
    expect(replay(null, logged).getText('notes').toString()).toBe('base more!');
    expect(logged.at(-1)).toMatchObject({ user_id: 'alice', origin: 'client' });
    // Released once judged, it is committed as her write, with its field-level audit row.
    const audited = (await fieldChanges(db, 'acme', name)).filter((row) => row.seq === logged.at(-1)!.seq);
    expect(audited.map((row) => [row.field, row.new_value, row.user_id])).toEqual([['notes', 'base more!', 'alice']]);
  });
});
