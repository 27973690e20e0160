import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Sampled time the process was not idle, ms. */
  busyMs: number;
  /** Self time by where the code comes from: a package, a Concord module folder, Node itself, GC. */
  areas: Array<{ area: string; ms: number; share: number }>;
  /** The functions with the most self time. */
  functions: Array<{ name: string; location: string; ms: number; share: number }>;
}

/**
 * Where the time went, from every `.cpuprofile` in `dir` (as written by
 * `node --cpu-prof --cpu-prof-dir dir`; several server processes are summed):
 * self time per function and per area of the code, idle time left out.
 */
export function summarizeProfiles(dir: string, top = 15): ProfileSummary {
  const byFunction = new Map<string, { name: string; location: string; area: string; ms: number }>();
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const nodes = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
    profile.samples.forEach((id, i) => {
      const frame = nodes.get(id)!;
      if (frame.functionName === '(idle)') return;
      const location = frame.url ? `${shorten(frame.url)}:${frame.lineNumber + 1}` : '';
      const name = frame.functionName || '(anonymous)';
      const key = `${name} ${location}`;
      let entry = byFunction.get(key);
      if (!entry) byFunction.set(key, (entry = { name, location, area: areaOf(frame.functionName, frame.url), ms: 0 }));
      entry.ms += (profile.timeDeltas[i] ?? 0) / 1000;
    });
  }
  const entries = [...byFunction.values()];
  const busyMs = entries.reduce((sum, entry) => sum + entry.ms, 0);
  const byArea = new Map<string, number>();
  for (const entry of entries) byArea.set(entry.area, (byArea.get(entry.area) ?? 0) + entry.ms);
  return {
    busyMs,
    areas: [...byArea].map(([area, ms]) => ({ area, ms, share: ms / busyMs })).sort((a, b) => b.ms - a.ms),
    functions: entries
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top)
      .map(({ name, location, ms }) => ({ name, location, ms, share: ms / busyMs })),
  };
}

function areaOf(functionName: string, url: string): string {
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (!url) return functionName === '(program)' ? 'V8 and native code (program)' : `native: ${functionName}${functionName === 'writev' ? ' (socket writes)' : ''}`;
  if (url.startsWith('node:')) return 'Node.js internals';
  if (url.startsWith('wasm://')) return 'WebAssembly (PGlite)';
  const dependency = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (dependency) return dependency[1]!;
  const own = /\/(src|bench)\/([^/]+)\//.exec(url) ?? /\/(src|bench)\/([^/]+)$/.exec(url);
  return own ? `concord ${own[1]}/${own[2]!.replace(/\.ts$/, '')}` : 'other';
}

function shorten(url: string): string {
  return url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/(src|bench)\//, '$1/');
}
