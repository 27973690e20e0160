import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { Writable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { WriteCoalescer } from '../src/socket/write-coalescer.ts';

/** A writable that records what reaches it in each write (one entry per write to the network); with `holding`, it takes nothing until told. */
function recordingStream({ holding = false } = {}): { stream: Writable; writes: string[][]; take(): void } {
  const writes: string[][] = [];
  const held: Array<() => void> = [];
  const done = (callback: () => void) => (holding ? held.push(callback) : callback());
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      writes.push([chunk.toString()]);
      done(callback);
    },
    writev(chunks, callback) {
      writes.push(chunks.map(({ chunk }) => (chunk as Buffer).toString()));
      done(callback);
    },
  });
  return { stream, writes, take: () => held.splice(0).forEach((callback) => callback()) };
}

function writer(coalescer: WriteCoalescer, stream: Writable) {
  return (text: string) => {
    coalescer.hold();
    stream.write(text);
  };
}

describe('WriteCoalescer', () => {
  it('sends what one burst wrote, including from the promise reactions it set off, in one write, once the burst is over', async () => {
    const { stream, writes } = recordingStream();
    const write = writer(new WriteCoalescer(stream), stream);
    write('a');
    write('b');
    void Promise.resolve()
      .then(() => write('c'))
      .then(() => write('d'));
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes).toEqual([['a', 'b', 'c', 'd']]);
  });

  it('takes a burst begun in a timer callback whole too, its promise reactions included', async () => {
    const { stream, writes } = recordingStream();
    const write = writer(new WriteCoalescer(stream), stream);
    setTimeout(() => {
      write('a');
      void Promise.resolve().then(() => write('b'));
    }, 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(writes).toEqual([['a', 'b']]);
  });

  it('lets writes of different turns go on their own, each once its turn is over', async () => {
    const { stream, writes } = recordingStream();
    const write = writer(new WriteCoalescer(stream), stream);
    for (const [i, text] of ['a', 'b', 'c'].entries()) {
      write(text);
      expect(writes).toHaveLength(i);
      await nextTurn();
    }
    expect(writes).toEqual([['a'], ['b'], ['c']]);
  });

  it('calls afterFlush once the burst is handed on: only what the other end has not taken is still unsent then', async () => {
    const unsent: number[] = [];
    for (const holding of [false, true]) {
      const { stream, take } = recordingStream({ holding });
      const write = writer(new WriteCoalescer(stream, () => unsent.push(stream.writableLength)), stream);
      write('abc');
      write('de');
      expect(stream.writableLength).toBe(5);
      await nextTurn();
      take();
    }
    // Taken at once: nothing unsent after the flush, though all five bytes were during the burst.
    expect(unsent).toEqual([0, 5]);
  });

  it('sends a burst of WebSocket frames in one write, each frame whole and in order', async () => {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(server, 'listening');
    let writes = 0;
    server.on('connection', (ws, request) => {
      const socket = request.socket as Socket & { _write: Function; _writev: Function };
      for (const method of ['_write', '_writev'] as const) {
        const original = socket[method].bind(socket);
        socket[method] = (...args: unknown[]) => {
          writes++;
          return original(...args);
        };
      }
      const coalescer = new WriteCoalescer(socket);
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
    writes = 0;
    client.send(new Uint8Array([7]));
    await all;
    expect(writes).toBe(1);
    expect(received).toEqual(Array.from({ length: 50 }, (_, i) => [7, i]));
    client.close();
    server.close();
  });
});
