import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { ConcordError } from '../errors.ts';

// Server-side request forgery: a webhook URL must not make Concord call into
// its own network. Addresses are classified by ipaddr.js (its special-range
// tables are kept up to date with the RFCs); only public unicast is allowed.

/** Whether `address` is a public unicast address (an IPv4-mapped IPv6 address counts as its IPv4 address). */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  // Loopback, private (RFC 1918), link-local, unique-local, CGNAT, multicast, unspecified, reserved, tunnels: all but 'unicast'.
  return ipaddr.process(address).range() === 'unicast';
}

/** The host of a URL as DNS and `isIP` read it (IPv6 literals come in brackets). */
function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for node:http(s) requests: resolves the host and hands on only
 * public addresses (all of them when `allowPrivate`), so the connection goes
 * to an address that was checked, not to whatever a second resolution
 * (DNS rebinding) returns.
 */
export function checkedLookup(allowPrivate: boolean) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      const usable = addresses.filter((entry) => allowPrivate || isPublicAddress(entry.address));
      if (usable.length === 0) {
        const refused = Object.assign(new Error(`${hostname} resolves only to private addresses (${addresses.map((entry) => entry.address).join(', ')})`), {
          code: 'EPRIVATEADDRESS',
        });
        return callback(refused, []);
      }
      if (options.all) callback(null, usable);
      else callback(null, usable[0]!.address, usable[0]!.family);
    });
  };
}

/**
 * Refuses (400 `bad-webhook-url`) a URL whose host is, or resolves to, a
 * private address, unless `allowPrivate`. Registration checks this; delivery
 * checks again through `checkedLookup` (a name can change what it points to).
 */
export async function checkPublicHost(url: URL, allowPrivate: boolean): Promise<void> {
  if (allowPrivate) return;
  const host = hostOf(url);
  const addresses = isIP(host) ? [host] : await resolveAll(host);
  const refused = addresses.filter((address) => !isPublicAddress(address));
  if (refused.length > 0) {
    throw new ConcordError(
      'bad-webhook-url',
      `${url.hostname} is or resolves to a loopback, private or otherwise non-public address (${refused.join(', ')}); WEBHOOK_ALLOW_PRIVATE=true allows them`,
    );
  }
}

/** A literal IP host is connected to without a lookup: it is checked here instead. */
export function literalHostRefused(url: URL, allowPrivate: boolean): string | null {
  const host = hostOf(url);
  if (allowPrivate || !isIP(host) || isPublicAddress(host)) return null;
  return `${host} is not a public address`;
}

async function resolveAll(host: string): Promise<string[]> {
  const found = await lookup(host, { all: true }).catch((error: NodeJS.ErrnoException) => {
    throw new ConcordError('bad-webhook-url', `${host} does not resolve (${error.code ?? error.message})`);
  });
  return found.map((entry) => entry.address);
}
