import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TEST_SECRET } from './tokens.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Runs one of the `npm run` scripts' files (`src/cli/<name>.ts`) to its end, as npm would, on the given storage env. */
export function runCli(name: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return runScript(`src/cli/${name}.ts`, args, env);
}

/** Runs a script of the repository (`file`, relative to it) with node to its end. */
export function runScript(file: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [file, ...args],
      { cwd: root, env: { ...process.env, AUTH_JWT_SECRET: TEST_SECRET, ...env } },
      (error, stdout, stderr) => resolve({ code: error ? ((error.code as number | undefined) ?? 1) : 0, stdout, stderr }),
    );
  });
}
