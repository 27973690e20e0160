import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import type { TokenKey } from '../src/auth/keys.ts';
import { createTokenVerifier, signToken, type TokenRequest } from '../src/auth/tokens.ts';

const secret = 'a test secret of at least thirty-two characters';
const key: TokenKey = { kind: 'secret', secret, development: false, source: 'AUTH_JWT_SECRET' };
const request: TokenRequest = { tenant: 'acme', userId: 'alice', role: 'editor', ttl: '1h' };

describe('the token verifier remembers what it verified, and nothing it should not', () => {
  it('a remembered token is refused with token-expired once its exp has passed', async () => {
    const verify = createTokenVerifier(key, {});
    const token = await signToken(secret, { ...request, ttl: '2s' });
    const { expiresAt } = await verify(token);
    expect((await verify(token)).userId).toBe('alice');
    await new Promise((resolve) => setTimeout(resolve, expiresAt - Date.now() + 50));
    await expect(verify(token)).rejects.toMatchObject({ code: 'token-expired' });
  });

  it('a token whose signature was changed is refused after the genuine one was verified', async () => {
    const verify = createTokenVerifier(key, {});
    const token = await signToken(secret, request);
    await verify(token);
    const [header, payload, signature] = token.split('.');
    const forged = `${header}.${payload}.${signature!.startsWith('A') ? 'B' : 'A'}${signature!.slice(1)}`;
    await expect(verify(forged)).rejects.toMatchObject({ code: 'bad-token' });
    const otherKey = await signToken('another secret of at least thirty-two characters', request);
    await expect(verify(otherKey)).rejects.toMatchObject({ code: 'bad-token' });
  });

  it('a refusal is not remembered: a token refused before its nbf is taken once that has passed', async () => {
    const verify = createTokenVerifier(key, {});
    const notBefore = Math.ceil(Date.now() / 1000) + 1;
    const token = await new SignJWT({ tenant: 'acme', role: 'editor' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setNotBefore(notBefore)
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(secret));
    await expect(verify(token)).rejects.toMatchObject({ code: 'bad-token' });
    await new Promise((resolve) => setTimeout(resolve, notBefore * 1000 - Date.now() + 50));
    expect((await verify(token)).userId).toBe('alice');
  });

  it('each of more tokens than it remembers gets its own principal, concurrently and again later', async () => {
    const verify = createTokenVerifier(key, {});
    const users = Array.from({ length: 10_050 }, (_, index) => `user-${index}`);
    const tokens = await Promise.all(users.map((userId) => signToken(secret, { ...request, userId })));
    const first = await Promise.all(tokens.map((token) => verify(token)));
    expect(first.map((principal) => principal.userId)).toEqual(users);
    const sameAtOnce = await Promise.all([verify(tokens[0]!), verify(tokens[0]!)]);
    expect(sameAtOnce.map((principal) => principal.userId)).toEqual(['user-0', 'user-0']);
    const again = await Promise.all(tokens.map((token) => verify(token)));
    expect(again.map((principal) => principal.userId)).toEqual(users);
  });
});
