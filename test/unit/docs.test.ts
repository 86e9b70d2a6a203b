import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/model/errors.js';
import { packagePath } from '../../src/model/package-root.js';

describe.each([
  ['docs/troubleshooting.md', ['docs', 'troubleshooting.md']],
  ['docs/zh-CN/troubleshooting.md', ['docs', 'zh-CN', 'troubleshooting.md']],
])('%s', (_name, parts) => {
  const doc = readFileSync(packagePath(...parts), 'utf8');
  const documented = [...doc.matchAll(/^## (KLAB_[A-Z_]+)$/gm)].map((m) => m[1]);

  it('has exactly one entry per error code', () => {
    expect([...documented].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it('lists the codes in the same order as the other language', () => {
    const other = readFileSync(
      packagePath(
        ...(parts.includes('zh-CN')
          ? ['docs', 'troubleshooting.md']
          : ['docs', 'zh-CN', 'troubleshooting.md']),
      ),
      'utf8',
    );
    expect(documented).toEqual([...other.matchAll(/^## (KLAB_[A-Z_]+)$/gm)].map((m) => m[1]));
  });
});
