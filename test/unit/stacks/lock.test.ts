import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readLock, writeLock } from '../../../src/stacks/cache.js';

describe('klab.lock.json', () => {
  it('is written into a lab directory that does not exist yet, pins sorted, and read back', async () => {
    const base = await mkdtemp(path.join(os.tmpdir(), 'klab-lock-'));
    try {
      const file = path.join(base, 'new-lab', 'klab.lock.json');
      const pin = (c: string) => ({ sha256: c.repeat(64), source: 'built', pinnedAt: 'now' });
      await writeLock(file, { version: 1, pins: { 'debian/z': pin('b'), 'debian/a': pin('a') } });
      const lock = await readLock(file);
      expect(Object.keys(lock.pins)).toEqual(['debian/a', 'debian/z']);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
