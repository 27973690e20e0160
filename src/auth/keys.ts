import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, type Config } from '../config.ts';

export type TokenKey =
  /** `source`: where the secret came from (AUTH_JWT_SECRET or the development secret's file), for saying so. */
  | { kind: 'secret'; secret: string; development: boolean; source: string }
  | { kind: 'public-key'; pem: string }
  | { kind: 'jwks'; url: string };

/**
 * The key tokens are checked with. Without AUTH_* settings (allowed outside
 * production only, see config) a development secret is generated once and
 * kept in DATA_DIR, so tokens minted with `npm run token` survive restarts.
 * Only the server creates it (`create`): a tool that made its own would sign
 * tokens the server refuses.
 */
export function resolveTokenKey(config: Config, { create = true } = {}): TokenKey {
  if (config.AUTH_JWT_SECRET) return { kind: 'secret', secret: config.AUTH_JWT_SECRET, development: false, source: 'AUTH_JWT_SECRET' };
  if (config.AUTH_PUBLIC_KEY) return { kind: 'public-key', pem: config.AUTH_PUBLIC_KEY.replace(/\\n/g, '\n') };
  if (config.AUTH_JWKS_URL) return { kind: 'jwks', url: config.AUTH_JWKS_URL };
  const file = resolve(config.DATA_DIR, 'dev-secret');
  return { kind: 'secret', secret: create ? developmentSecret(config.DATA_DIR) : existingDevelopmentSecret(file), development: true, source: file };
}

function existingDevelopmentSecret(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    throw new ConfigError(
      `no development secret in ${file}: the server creates it on its first start (npm start). Run this with the server's DATA_DIR, or set the server's AUTH_JWT_SECRET`,
    );
  }
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
