import path from 'node:path';
import { execa } from 'execa';

const CLI = path.resolve(import.meta.dirname, '..', '..', 'dist', 'src', 'cli.js');

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Run the built klab CLI as a user would (npm test builds it first). */
export async function klab(
  args: readonly string[],
  dir: string,
  timeoutMs = 3_600_000,
): Promise<CliResult> {
  const result = await execa('node', [CLI, '--dir', dir, ...args], {
    reject: false,
    timeout: timeoutMs,
    env: { CI: 'true' },
    stdin: 'ignore',
  });
  return {
    exitCode: result.exitCode ?? 1,
    stdout: String(result.stdout),
    stderr: String(result.stderr),
  };
}

/** Fail with the whole output when a command did not succeed. */
export function ok(result: CliResult): CliResult {
  if (result.exitCode !== 0) {
    throw new Error(
      `klab exited ${result.exitCode}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`,
    );
  }
  return result;
}
