import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runProcess } from '../../../src/adapters/process.js';

/** Field 5 of /proc/<pid>/stat: the process group (the command name, field 2, is "(node)"). */
function processGroup(stat: string): string {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2] ?? '';
}

describe('runProcess', () => {
  it("runs children in their own process group, so the terminal's Ctrl-C reaches only klab", async () => {
    const child = await runProcess(['cat', '/proc/self/stat']);
    expect(child.exitCode).toBe(0);
    const ours = processGroup(readFileSync('/proc/self/stat', 'utf8'));
    const theirs = processGroup(child.stdout);
    expect(theirs).toMatch(/^\d+$/);
    expect(theirs).not.toBe(ours);
  });

  it('a missing working directory is said as such, not as the program missing', async () => {
    await expect(runProcess(['true'], { cwd: '/nonexistent/klab-lab' })).rejects.toThrow(
      /working directory \/nonexistent\/klab-lab does not exist/,
    );
    const missing = await runProcess(['klab-no-such-program']);
    expect(missing.notFound).toBe(true);
  });
});
