import { readFileSync } from 'node:fs';
import type { HocuspocusProvider } from '@hocuspocus/provider';
import type { TestStorage } from '../test/support/database.ts';
import type { ServerProcess } from '../test/support/server.ts';

/** Resolves when the server has acknowledged every edit so far (unsyncedChanges back to 0), as an event, not a poll. */
export function acknowledged(provider: HocuspocusProvider, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (provider.unsyncedChanges !== 0) return;
      clearTimeout(timer);
      provider.off('unsyncedChanges', check);
      resolve();
    };
    const timer = setTimeout(() => {
      provider.off('unsyncedChanges', check);
      reject(new Error(`${provider.unsyncedChanges} edit(s) still unacknowledged after ${timeoutMs} ms`));
    }, timeoutMs);
    provider.on('unsyncedChanges', check);
    check();
  });
}

/** The machine's cumulative CPU times (Linux /proc/stat: user nice system idle iowait irq softirq steal ...), or none. */
function cpuTimes(): number[] {
  try {
    return readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  } catch {
    return [];
  }
}

/**
 * On a VM, stolen CPU stalls the client, the server and Postgres alike and
 * shows up as tail latency, so every figure comes with it: call the returned
 * function at the end of a phase for the share of CPU time stolen during it.
 */
export function stealMeter(): () => number | undefined {
  const before = cpuTimes();
  return () => {
    const after = cpuTimes();
    if (before.length < 8 || after.length < 8) return undefined;
    const delta = after.map((value, i) => value - before[i]!);
    return delta[7]! / delta.reduce((sum, value) => sum + value, 0);
  };
}

/** Nearest-rank percentile. */
export function percentile(values: number[], q: number): number {
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN;
}

export function fixed(value: number | undefined, digits: number): string {
  return value !== undefined && Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

/**
 * Runs a benchmark against server processes on one fresh storage: on failure
 * prints why and what the servers logged at warn or above; stops the servers
 * and drops the storage whatever happens; exits 1 on failure, else 0.
 */
export async function runAgainst(servers: ServerProcess[], storage: TestStorage, run: () => Promise<void>): Promise<never> {
  let failed = false;
  try {
    await run();
  } catch (error) {
    failed = true;
    console.error(`\nFAILED: ${(error as Error).message}`);
    for (const server of servers) {
      const problems = server.logs.split('\n').filter((line) => /"level":[4-6]0/.test(line) || (line && !line.startsWith('{')));
      for (const line of problems.slice(0, 10)) console.error(`server said: ${line.slice(0, 400)}`);
    }
  } finally {
    for (const server of servers) await server.stop();
    await storage.drop();
  }
  process.exit(failed ? 1 : 0);
}
