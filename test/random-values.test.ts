import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import '../src/random-values.ts';

describe('random values for lib0, pooled', () => {
  it('are loaded by the server before anything that loads lib0, which binds getRandomValues when it loads', () => {
    const firstImport = /^import\s+(?:[^'"]*from\s+)?'([^']+)'/m.exec(readFileSync(new URL('../src/main.ts', import.meta.url), 'utf8'));
    expect(firstImport?.[1]).toBe('./random-values.ts');
  });

  it('hand out words that differ, across refills of the pool, and never the same word twice in a row', () => {
    const drawn = Array.from({ length: 5_000 }, () => webcrypto.getRandomValues(new Uint32Array(1))[0]!);
    // 5,000 draws of 32 bits: a repeat has a chance of about 0.3 %; several would mean the pool hands words out again.
    expect(new Set(drawn).size).toBeGreaterThanOrEqual(drawn.length - 1);
    expect(drawn.some((word, index) => index > 0 && word === drawn[index - 1])).toBe(false);
    // Each bit is set about half the time: zeroed (spent) words handed out would pull it down.
    const ones = drawn.reduce((sum, word) => sum + word.toString(2).split('1').length - 1, 0);
    expect(ones / (drawn.length * 32)).toBeGreaterThan(0.48);
    expect(ones / (drawn.length * 32)).toBeLessThan(0.52);
  });

  it('fill several words at once, and leave other requests to Node as before', () => {
    const words = webcrypto.getRandomValues(new Uint32Array(16));
    expect(new Set(words).size).toBe(16);
    const bytes = webcrypto.getRandomValues(new Uint8Array(64));
    expect(bytes.some((byte) => byte !== 0)).toBe(true);
    const large = webcrypto.getRandomValues(new Uint32Array(1_000));
    expect(new Set(large).size).toBeGreaterThan(990);
    // Node's own checks still apply: at most 65,536 bytes, integer arrays only.
    expect(() => webcrypto.getRandomValues(new Uint8Array(65_537))).toThrow(/65,536/);
    expect(() => webcrypto.getRandomValues(new Float64Array(2) as never)).toThrow();
  });

  it('give every new Y.Doc its own guid and clientID', async () => {
    const Y = await import('yjs');
    const docs = Array.from({ length: 2_000 }, () => new Y.Doc());
    expect(new Set(docs.map((doc) => doc.guid)).size).toBe(docs.length);
    expect(new Set(docs.map((doc) => doc.clientID)).size).toBeGreaterThanOrEqual(docs.length - 1);
    for (const doc of docs) expect(doc.guid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    docs.forEach((doc) => doc.destroy());
  });
});
