import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/** The directory holding klab's package.json, from src/ (tests) or dist/src/ (built). */
export function packageRoot(): string {
  if (cached) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find klab package root');
    dir = parent;
  }
  cached = dir;
  return dir;
}

export function packagePath(...parts: string[]): string {
  return path.join(packageRoot(), ...parts);
}
