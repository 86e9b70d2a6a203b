/**
 * Global setup of the unit tier: every temporary directory its tests make (os.tmpdir())
 * goes under one directory of the run, removed when the run ends, so repeated runs do not
 * pile hundreds of klab-* directories into /tmp.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const previous = process.env.TMPDIR;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'klab-unit-run-'));
  // Workers start after this and inherit the variable; os.tmpdir() reads it.
  process.env.TMPDIR = dir;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(dir, { recursive: true, force: true });
  };
}
