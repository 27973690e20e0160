import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.ts';

export type TokenKey =
  | { kind: 'secret'; secret: string; development: boolean }
  | { kind: 'public-key'; pem: string }
  | { kind: 'jwks'; url: string };

/**
 * The key tokens are checked with. Without AUTH_* settings (allowed outside
 * production only, see config) a development secret is generated once and
 * kept in DATA_DIR, so tokens minted with `npm run token` survive restarts.
 */
export function resolveTokenKey(config: Config): TokenKey {
  if (config.AUTH_JWT_SECRET) return { kind: 'secret', secret: config.AUTH_JWT_SECRET, development: false };
  if (config.AUTH_PUBLIC_KEY) return { kind: 'public-key', pem: config.AUTH_PUBLIC_KEY.replace(/\\n/g, '\n') };
  if (config.AUTH_JWKS_URL) return { kind: 'jwks', url: config.AUTH_JWKS_URL };
  return { kind: 'secret', secret: developmentSecret(config.DATA_DIR), development: true };
}

function developmentSecret(dataDir: string): string {
  const file = join(dataDir, 'dev-secret');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    mkdirSync(dataDir, { recursive: true });
    const secret = randomBytes(32).toString('hex');
    // 'wx': if another process created it first, keep theirs.
    try {
      writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' });
      return secret;
    } catch {
      return readFileSync(file, 'utf8').trim();
    }
  }
}
