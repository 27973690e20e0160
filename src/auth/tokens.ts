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

export interface VerifyOptions {
  issuer?: string;
  audience?: string;
}

export function createTokenVerifier(key: TokenKey, options: VerifyOptions): TokenVerifier {
  const { keyOrSet, algorithms } = verificationKey(key);
  return async (token) => {
    if (!token) throw new ConcordError('bad-token', 'no token was sent');
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, keyOrSet as JWTVerifyGetKey, {
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
      return { keyOrSet: new TextEncoder().encode(key.secret), algorithms: ['HS256'] };
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
