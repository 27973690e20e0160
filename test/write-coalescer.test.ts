import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { WriteCoalescer } from '../src/socket/write-coalescer.ts';

/** A writable that records what reaches it in each write: one entry per write to the network. */
function recordingStream(): { stream: Writable; writes: string[][] } {
  const writes: string[][] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writes.push([chunk.toString()]);
      done();
    },
    writev(chunks, done) {
      writes.push(chunks.map(({ chunk }) => (chunk as Buffer).toString()));
      done();
    },
  });
  return { stream, writes };
}

describe('WriteCoalescer', () => {
  it('sends what one burst wrote, including from the promise reactions it set off, in one write, once the burst is over', async () => {
    const { stream, writes } = recordingStream();
    const coalescer = new WriteCoalescer(stream);
    const write = (text: string) => {
      coalescer.hold();
      stream.write(text);
    };
    write('a');
    write('b');
    void Promise.resolve()
      .then(() => write('c'))
      .then(() => write('d'));
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes).toEqual([['a', 'b', 'c', 'd']]);
  });

  it('lets writes of different turns go on their own', async () => {
    const { stream, writes } = recordingStream();
    const coalescer = new WriteCoalescer(stream);
    for (const text of ['a', 'b', 'c']) {
      coalescer.hold();
      stream.write(text);
      await nextTurn();
    }
    expect(writes).toEqual([['a'], ['b'], ['c']]);
  });

  it('leaves WebSocket frames whole and in order when a burst of them shares a write', async () => {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(server, 'listening');
    server.on('connection', (ws, request) => {
      const coalescer = new WriteCoalescer(request.socket);
      ws.on('message', (data) => {
        for (let i = 0; i < 50; i++) {
          coalescer.hold();
          ws.send(new Uint8Array([...(data as Buffer), i]));
        }
      });
    });
    const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const received: number[][] = [];
    const all = new Promise<void>((resolve) => client.on('message', (data) => received.push([...(data as Buffer)]) === 50 && resolve()));
    await once(client, 'open');
    client.send(new Uint8Array([7]));
    await all;
    expect(received).toEqual(Array.from({ length: 50 }, (_, i) => [7, i]));
    client.close();
    server.close();
  });
});
