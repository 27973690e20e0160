import { Writable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { createMetrics } from '../src/metrics.ts';
import { AckGatedSocket } from '../src/persistence/acknowledgements.ts';
import { syncStatusFrame } from '../src/protocol.ts';
import { WriteCoalescer } from '../src/socket/write-coalescer.ts';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** An AckGatedSocket over a stand-in WebSocket that records what it is sent. */
function gatedSocket() {
  const sent: Uint8Array[] = [];
  const socket = { readyState: 1, OPEN: 1, send: (frame: Uint8Array) => sent.push(frame), close: () => {} } as unknown as WebSocket;
  const transport = new Writable({ write: (_chunk, _encoding, done) => done() });
  return { gated: new AckGatedSocket(socket, new WriteCoalescer(transport), createMetrics()), sent };
}

describe('AckGatedSocket', () => {
  it('holds a write\'s answer until its commit, keeping only what the answer needs: not the write being handled', async () => {
    const { gated, sent } = gatedSocket();
    let commit!: () => void;
    const committed = new Promise<void>((resolve) => (commit = resolve));
    // What the write being handled holds (its frame, the update's reach) stands in here as one large object its parking check reads.
    const handled = (() => {
      const write = { frame: new Uint8Array(1 << 20), parked: false };
      gated.expectWrite('quote', { earlier: Promise.resolve(), parked: () => (write.parked ? Promise.resolve(true) : undefined) });
      return new WeakRef(write);
    })();
    gated.holdUntil('quote', committed);
    const answer = syncStatusFrame('quote', true);
    gated.send(answer);

    await nextTurn();
    collectGarbage();
    expect(handled.deref()).toBeUndefined();
    expect(sent).toEqual([]);

    commit();
    await nextTurn();
    expect(sent).toEqual([answer]);
  });
});
