import { SignJWT } from 'jose';

export const TEST_SECRET = 'concord-test-secret-0123456789abcdef';

export interface TestClaims {
  tenant?: string;
  sub?: string;
  role?: string;
  name?: string;
  docs?: string[];
  /** Seconds from now; negative for an expired token. */
  expiresIn?: number;
  secret?: string;
}

export function token(claims: TestClaims = {}): Promise<string> {
  const { tenant = 'acme', sub = 'alice', role = 'editor', name, docs, expiresIn = 3600, secret = TEST_SECRET } = claims;
  return new SignJWT({ tenant, role, name, docs })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn)
    .sign(new TextEncoder().encode(secret));
}
