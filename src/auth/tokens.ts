import { createPublicKey } from 'node:crypto';
import { createRemoteJWKSet, errors, jwtVerify, SignJWT, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { ConcordError } from '../errors.ts';
import type { TokenKey } from './keys.ts';

export const roles = ['viewer', 'commenter', 'editor', 'admin'] as const;
export type Role = (typeof roles)[number];

// Postgres text cannot hold NUL: such a claim would fail every write it reaches.
const text = z.string().min(1).max(256).regex(/^[^\u0000]*$/, 'must not contain NUL');

const claims = z.object({
  sub: text,
  tenant: text,
  exp: z.number(),
  name: text.optional(),
  role: z.enum(roles).default('viewer'),
  docs: z.array(text).optional(),
});

/** Who is calling, as the token says. Trusted everywhere past verification. */
export interface Principal {
  userId: string;
  tenant: string;
  name: string;
  role: Role;
  /** `<kind>/<id>` the token is limited to; undefined means any document of the tenant. */
  docs?: string[];
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

export type TokenVerifier = (token: string) => Promise<Principal>;

// Tokens remembered once verified, at most: the first verified is forgotten first.
const REMEMBERED_TOKENS = 10_000;
// A remembered token is verified again after this long, so that a key withdrawn from a JWKS stops working.
const REMEMBERED_TOKEN_MS = 60_000;

export interface VerifyOptions {
  issuer?: string;
  audience?: string;
}

/**
 * Verifies tokens (jose), remembering each one verified: a connection's
 * token is checked by the socket's budgets, Authorization and Limits, an HTTP
 * request's by the request limits and the API, and each verification costs
 * about 70 us of CPU here (HMAC through WebCrypto), a look-up about 1. A
 * remembered token is verified again once it expires (and refused then with
 * `token-expired`) or after REMEMBERED_TOKEN_MS; a refusal is not remembered.
 */
export function createTokenVerifier(key: TokenKey, options: VerifyOptions): TokenVerifier {
  return rememberVerified(verifyWith(key, options));
}

function rememberVerified(verify: TokenVerifier): TokenVerifier {
  // Insertion order is the order of forgetting. `until` is Infinity while the verification is under way.
  const remembered = new Map<string, { principal: Promise<Principal>; until: number }>();
  return (token) => {
    const now = Date.now();
    const known = remembered.get(token);
    if (known && now < known.until) return known.principal;
    remembered.delete(token);
    const entry = { principal: verify(token), until: Infinity };
    remembered.set(token, entry);
    if (remembered.size > REMEMBERED_TOKENS) remembered.delete(remembered.keys().next().value!);
    entry.principal.then(
      (principal) => {
        entry.until = Math.min(principal.expiresAt, now + REMEMBERED_TOKEN_MS);
      },
      () => {
        if (remembered.get(token) === entry) remembered.delete(token);
      },
    );
    return entry.principal;
  };
}

function verifyWith(key: TokenKey, options: VerifyOptions): TokenVerifier {
  const { keyOrSet, algorithms } = verificationKey(key);
  return async (token) => {
    if (!token) throw new ConcordError('bad-token', 'no token was sent');
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, (await keyOrSet) as JWTVerifyGetKey, {
        algorithms,
        issuer: options.issuer,
        audience: options.audience,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw new ConcordError('token-expired', 'the token has expired; fetch a new one', { cause: error });
      throw new ConcordError('bad-token', `the token was refused: ${(error as Error).message}`, { cause: error });
    }
    const parsed = claims.safeParse(payload);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'claims'}: ${issue.message}`).join('; ');
      throw new ConcordError('bad-token', `the token's claims are not usable: ${problems}`);
    }
    const { sub, tenant, exp, name, role, docs } = parsed.data;
    return { userId: sub, tenant, name: name ?? sub, role, docs, expiresAt: exp * 1000 };
  };
}

function verificationKey(key: TokenKey): { keyOrSet: unknown; algorithms: string[] } {
  switch (key.kind) {
    case 'secret':
      // Imported once: given the bytes, jose imports them for every verification, which doubles its cost.
      return { keyOrSet: crypto.subtle.importKey('raw', new TextEncoder().encode(key.secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']), algorithms: ['HS256'] };
    case 'public-key':
      return { keyOrSet: createPublicKey(key.pem), algorithms: ['RS256', 'ES256', 'EdDSA'] };
    case 'jwks':
      return { keyOrSet: createRemoteJWKSet(new URL(key.url)), algorithms: ['RS256', 'ES256', 'EdDSA'] };
  }
}

export interface TokenRequest {
  tenant: string;
  userId: string;
  role: Role;
  name?: string;
  docs?: string[];
  /** A jose time span such as `1h` or `15m`. */
  ttl: string;
  issuer?: string;
  audience?: string;
}

/** Signs a token with an HS256 secret (the development secret or AUTH_JWT_SECRET). */
export async function signToken(secret: string, request: TokenRequest): Promise<string> {
  const jwt = new SignJWT({ tenant: request.tenant, role: request.role, name: request.name, docs: request.docs })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(request.userId)
    .setIssuedAt()
    .setExpirationTime(request.ttl);
  if (request.issuer) jwt.setIssuer(request.issuer);
  if (request.audience) jwt.setAudience(request.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}
