import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../config.ts';

/** A port to listen on, with the names of the settings that chose it (for messages that say what to change). */
export interface Bind {
  port: number;
  host: string;
  settings: { port: string; host: string };
}

/** Listens on `bind`; a refusal becomes one line that names the setting and the fix. */
export function listenOn(server: Server, bind: Bind): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const fail = (error: NodeJS.ErrnoException) => reject(bindProblem(error, bind));
    server.once('error', fail);
    server.listen(bind.port, bind.host, () => {
      server.off('error', fail);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * Fails as `listenOn` would, at once and without keeping the port: run before
 * the slow part of a start (opening and migrating the database) so that a port
 * in use costs no wait.
 */
export async function ensureFree(bind: Bind): Promise<void> {
  if (bind.port === 0) return;
  const probe = createServer();
  await listenOn(probe, bind);
  await new Promise((resolve) => probe.close(resolve));
}

function bindProblem(error: NodeJS.ErrnoException, { port, host, settings }: Bind): Error {
  switch (error.code) {
    case 'EADDRINUSE':
      return new ConfigError(`port ${port} on ${host} is already in use (another Concord?): stop that process, or set ${settings.port} to a free port`);
    case 'EACCES':
      return new ConfigError(`not allowed to listen on port ${port}: set ${settings.port} to a port above 1023`);
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
      return new ConfigError(`${settings.host}=${host} is not an address of this machine: set it to 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)`);
    default:
      return error;
  }
}
