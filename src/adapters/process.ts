/** Every local process klab starts goes through here, as an argv array (never a shell). */
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { ProcessResult } from '../model/ports.js';

export interface ProcessOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string;
  timeoutMs?: number;
  /** Called for each complete output line (\r-separated progress redraws are split too). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

export type { ProcessResult } from '../model/ports.js';

// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping terminal escapes
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g;

export function cleanLines(chunk: string): string[] {
  return chunk
    .replace(ANSI, '')
    .split(/\r\n|\r|\n/)
    .map((line) => line.trimEnd())
    .filter((line) => line.length > 0);
}

function lineSplitter(emit: (line: string) => void) {
  let buffer = '';
  return {
    push(chunk: string) {
      buffer += chunk;
      const parts = buffer.split(/\r\n|\r|\n/);
      buffer = parts.pop() ?? '';
      for (const part of parts) for (const line of cleanLines(part)) emit(line);
    },
    flush() {
      for (const line of cleanLines(buffer)) emit(line);
      buffer = '';
    },
  };
}

export async function runProcess(
  argv: readonly string[],
  options: ProcessOptions = {},
): Promise<ProcessResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('runProcess: empty argv');
  // spawn says ENOENT for a missing working directory too: never report that as the
  // program missing ("vagrant is not installed" for a lab directory not made yet).
  if (options.cwd !== undefined) {
    await access(options.cwd).catch(() => {
      throw new Error(`cannot run ${file}: its working directory ${options.cwd} does not exist`);
    });
  }
  const child = execa(file, args, {
    cwd: options.cwd,
    env: options.env,
    extendEnv: true,
    input: options.input,
    stdin: options.input === undefined ? 'ignore' : 'pipe',
    timeout: options.timeoutMs,
    reject: false,
    all: false,
    stripFinalNewline: false,
    // Its own process group: the terminal's Ctrl-C reaches klab, not a virsh or vagrant
    // call in the middle of a snapshot; klab stops at a safe point (model/interrupt.ts).
    detached: true,
  });
  const { onLine } = options;
  if (onLine) {
    const out = lineSplitter((line) => onLine(line, 'stdout'));
    const err = lineSplitter((line) => onLine(line, 'stderr'));
    child.stdout?.on('data', (data: Buffer) => out.push(data.toString('utf8')));
    child.stderr?.on('data', (data: Buffer) => err.push(data.toString('utf8')));
    child.stdout?.on('end', () => out.flush());
    child.stderr?.on('end', () => err.flush());
  }
  const result = await child;
  const notFound = (result as { code?: string }).code === 'ENOENT';
  return {
    command: argv,
    exitCode: result.exitCode ?? (notFound ? 127 : 1),
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    timedOut: result.timedOut === true,
    notFound,
  };
}

/** Run with the terminal attached (interactive ssh); resolves to the exit code. */
export async function runInteractive(argv: readonly string[], cwd?: string): Promise<number> {
  const [file, ...args] = argv;
  if (!file) throw new Error('runInteractive: empty argv');
  const result = await execa(file, args, { cwd, stdio: 'inherit', reject: false });
  return result.exitCode ?? 1;
}

/** Is an executable on PATH? (Without spawning it.) */
export async function findExecutable(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
