import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/model/errors.js';
import { packagePath } from '../../src/model/package-root.js';

describe('docs/troubleshooting.md', () => {
  const doc = readFileSync(packagePath('docs', 'troubleshooting.md'), 'utf8');
  const documented = [...doc.matchAll(/^## (KLAB_[A-Z_]+)$/gm)].map((m) => m[1]);

  it('has exactly one entry per error code', () => {
    expect([...documented].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });
});
