import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import {
  parseZeroFill,
  ZERO_FILL_MARGIN_MIB,
  zeroFreeMemory,
  zeroFreeMemoryScript,
} from '../../../src/app/guest-memory.js';
import { FakeHost } from '../../helpers/fake-host.js';

describe('zeroing free guest memory before a snapshot', () => {
  it('is a valid POSIX sh script that drops the page cache, fills a tmpfs from /dev/zero and unmounts it', async () => {
    const script = zeroFreeMemoryScript();
    await execa('sh', ['-n', '-c', script]);
    expect(script).toContain('echo 3 > /proc/sys/vm/drop_caches');
    expect(script).toContain(`fill=$((avail - ${ZERO_FILL_MARGIN_MIB}))`);
    expect(script).toMatch(/mount -t tmpfs -o "size=\$\{fill\}m,mode=0700" klab-zero "\$dir"/);
    expect(script).toContain('dd if=/dev/zero of="$dir/fill"');
    // A kernel that zeroes freed pages (init_on_free=1, klab's box) needs no fill.
    expect(script).toMatch(
      /grep -qw 'init_on_free=1' \/proc\/cmdline; then[\s\S]*kernel=1"\n {2}exit 0/,
    );
    // Unmounted on every way out, so the guest gets its memory back even when interrupted.
    expect(script).toContain('trap cleanup EXIT HUP INT TERM');
  });

  it('reads how much was zeroed, and treats an answer without figures as nothing zeroed', () => {
    expect(parseZeroFill('node1', 'filled=1650 free=1790\n')).toEqual({
      vm: 'node1',
      filledMib: 1650,
      freeMib: 1790,
      kernelZeroes: false,
    });
    expect(parseZeroFill('node1', 'filled=0 free=1790 kernel=1\n')).toEqual({
      vm: 'node1',
      filledMib: 0,
      freeMib: 1790,
      kernelZeroes: true,
    });
    expect(parseZeroFill('node1', 'filled=-20 free=90')).toEqual({
      vm: 'node1',
      filledMib: 0,
      freeMib: 90,
      kernelZeroes: false,
    });
    expect(parseZeroFill('node1', 'sh: 1: cannot create')).toEqual({
      vm: 'node1',
      filledMib: 0,
      freeMib: 0,
      kernelZeroes: false,
    });
  });

  it('runs as root with a bound, and never fails the snapshot when the guest cannot', async () => {
    const host = new FakeHost('node1', (argv) =>
      argv[0] === 'sh' ? { exitCode: 1, stderr: 'mount: permission denied' } : undefined,
    );
    expect(await zeroFreeMemory(host)).toEqual({
      vm: 'node1',
      filledMib: 0,
      freeMib: 0,
      kernelZeroes: false,
    });
    expect(host.calls).toEqual([{ argv: ['sh', '-c', zeroFreeMemoryScript()], sudo: true }]);
  });
});
