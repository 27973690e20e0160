import { randomFillSync, webcrypto } from 'node:crypto';

/**
 * `crypto.getRandomValues` for small Uint32Arrays, served from a pool that
 * one call refills: a call costs about 5 µs whatever its size (measured on
 * Node 24 here), and lib0 asks for 4 bytes 32 times for every `new Y.Doc()`
 * (its guid, uuidv4, and its clientID), which Hocuspocus makes for every
 * awareness message: about 150 µs each, 4 µs pooled (bench/README.md, "What a
 * Y.Doc's guid costs"). The bytes come from the same CSPRNG, handed out once
 * (Node's randomUUID pools its bytes the same way). Other requests go to the
 * original. Imported first by src/main.ts: lib0 binds the function when it loads.
 */
const POOL_WORDS = 1024;
// lib0's requests are one word; larger ones are rare and go to Node.
const MAX_POOLED_WORDS = 16;

const words = new Uint32Array(POOL_WORDS);
let next = POOL_WORDS;
const unpooled = webcrypto.getRandomValues.bind(webcrypto);

function getRandomValues<T extends ArrayBufferView | null>(array: T): T {
  if (!(array instanceof Uint32Array) || array.length > MAX_POOLED_WORDS) return unpooled(array as never) as T;
  if (next + array.length > POOL_WORDS) {
    randomFillSync(words);
    next = 0;
  }
  for (let index = 0; index < array.length; index++) {
    array[index] = words[next]!;
    // Served once: nothing handed out stays in memory.
    words[next++] = 0;
  }
  return array;
}

(webcrypto as { getRandomValues: typeof getRandomValues }).getRandomValues = getRandomValues;
