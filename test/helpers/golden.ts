import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';

const GOLDEN_DIR = path.resolve(import.meta.dirname, '..', 'golden');

/**
 * Compare with test/golden/<name> (or an absolute path: a module's own golden file);
 * UPDATE_GOLDEN=1 rewrites the file instead.
 */
export function expectGolden(name: string, actual: string): void {
  const file = path.isAbsolute(name) ? name : path.join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) {
    if (process.env.CI === 'true' && !existsSync(file)) {
      throw new Error(
        `golden file ${name} is missing; run UPDATE_GOLDEN=1 npm run test:unit locally`,
      );
    }
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, actual);
  }
  expect(actual).toBe(readFileSync(file, 'utf8'));
}

export function goldenPath(name: string): string {
  return path.join(GOLDEN_DIR, name);
}
