import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { DEFAULT_DATA_DIR, type Config } from './config.ts';

/** Where a bound address is reached from this machine (an unspecified bind answers on loopback too). */
export function reachableUrl(address: AddressInfo, scheme = 'http'): string {
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

/**
 * How to mint a token the server accepts, as a command to copy (`-s`: npm's
 * own header would end up in TOKEN). The token tool must find the server's
 * secret: a DATA_DIR other than npm's default is passed along.
 */
export function tokenHint(config: Config): { command: string; signedWith: string } | null {
  if (config.AUTH_PUBLIC_KEY || config.AUTH_JWKS_URL) return null;
  const dataDir = resolve(config.DATA_DIR);
  const sameDataDir = dataDir === resolve(DEFAULT_DATA_DIR) ? '' : `DATA_DIR=${shellWord(dataDir)} `;
  const command = `TOKEN=$(${config.AUTH_JWT_SECRET ? '' : sameDataDir}npm run -s token -- --tenant acme --user alice --role editor --name Alice)`;
  const signedWith = config.AUTH_JWT_SECRET ? 'AUTH_JWT_SECRET (set it in that shell too)' : `the development secret in ${resolve(dataDir, 'dev-secret')}`;
  return { command, signedWith };
}

/** The start banner for a person at a terminal: where to go and what to type. */
export function startBanner(config: Config, address: AddressInfo, metricsAddress: AddressInfo | null): string {
  const http = reachableUrl(address);
  const token = tokenHint(config);
  const database = config.DATABASE_URL ? 'PostgreSQL (DATABASE_URL)' : `the embedded database in ${resolve(config.DATA_DIR, 'pgdata')}`;
  const tryThese: Array<[string, string]> = [
    ['npm run example -- "$TOKEN" acme/quote/q-1001', 'edit a quote, print what the server acknowledged'],
    ['npm run example:quote', 'a quote editor in your browser (two users, lines, comments)'],
    ['npm run example:editor', 'a report editor in your browser'],
    [`${http}/`, 'how to connect'],
    [`${http}/admin`, 'history, versions and restore (a token with --role admin)'],
    ...(metricsAddress ? [[`${reachableUrl(metricsAddress)}/metrics`, 'Prometheus metrics (METRICS_PORT)'] as [string, string]] : []),
  ];
  const width = Math.max(...tryThese.map(([what]) => what.length)) + 3;
  const lines = [
    `Concord is running on ${http} (WebSocket ${reachableUrl(address, 'ws')}), on ${database}.`,
    '',
    token ? `Mint a token, signed with ${token.signedWith}:` : 'Tokens come from your identity provider (AUTH_PUBLIC_KEY or AUTH_JWKS_URL).',
    ...(token ? [`  ${token.command}`] : []),
    'Then try:',
    ...tryThese.map(([what, why]) => `  ${what.padEnd(width)}${why}`),
    '',
    'Logs follow as JSON lines; Ctrl-C stops the server.',
  ];
  return lines.join('\n') + '\n';
}

function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}
