/** The per-user cache shared by every lab (boxes, hypervisor verdict, later artifacts). */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export function cacheRoot(): string {
  if (process.env.KLAB_CACHE_DIR) return path.resolve(process.env.KLAB_CACHE_DIR);
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache'), 'klab');
}

export function cachePath(...parts: string[]): string {
  return path.join(cacheRoot(), ...parts);
}

export async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

let writes = 0;

/**
 * Write JSON atomically (temp file + rename), so an interrupted run never leaves half a file.
 * Each write has a temp file of its own: two writes of one process may overlap.
 */
export async function writeJson(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  writes += 1;
  const temp = `${file}.${process.pid}.${writes}.tmp`;
  await writeFile(temp, `${JSON.stringify(value, null, 2)}\n`);
  await rename(temp, file);
}
