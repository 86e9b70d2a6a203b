import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import {
  PAGEOUT_PROGRAM,
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
    // Mapped program code goes first (drop_caches leaves it), before the drop; a guest
    // without perl, or whose perl fails, still drops its page cache.
    expect(script).toContain(`perl - <<'KLAB_PAGEOUT' || true\n${PAGEOUT_PROGRAM}KLAB_PAGEOUT\n`);
    expect(script.indexOf('KLAB_PAGEOUT\nfi')).toBeLessThan(script.indexOf('drop_caches'));
    // What the page-out freed is measured before the drop, so the two are told apart.
    expect(script).toMatch(/KLAB_PAGEOUT\nfi\npaged=\$\(\(\$\(memfree\) - before\)\)\nsync\n/);
  });

  it('pages out mapped files with a perl program that compiles, by pidfd and process_madvise', async () => {
    await execa('perl', ['-c', '-e', PAGEOUT_PROGRAM]);
    // x86_64: pidfd_open 434, process_madvise 440, MADV_PAGEOUT 21 (linux/mman-common.h).
    expect(PAGEOUT_PROGRAM).toContain(
      'my ($pidfd_open, $process_madvise, $pageout) = (434, 440, 21);',
    );
    // Only file-backed mappings, of processes that map 8 MiB of files or more.
    expect(PAGEOUT_PROGRAM).toContain("$file =~ m{^/} && $inode ne '0'");
    expect(PAGEOUT_PROGRAM).toContain('>= 8192');
    // A kernel before 5.10 has no process_madvise: stop at once, fail nothing.
    expect(PAGEOUT_PROGRAM).toContain('exit 0 if $fd < 0 && $!{ENOSYS};');
  });

  it('reads how much was zeroed, and treats an answer without figures as nothing zeroed', () => {
    expect(parseZeroFill('node1', 'filled=1650 free=1790\n')).toEqual({
      vm: 'node1',
      filledMib: 1650,
      freeMib: 1790,
      kernelZeroes: false,
      releasedMib: 0,
      pagedOutMib: 0,
    });
    expect(parseZeroFill('node1', 'filled=0 free=1790 released=212 paged=180 kernel=1\n')).toEqual({
      vm: 'node1',
      filledMib: 0,
      freeMib: 1790,
      kernelZeroes: true,
      releasedMib: 212,
      pagedOutMib: 180,
    });
    expect(parseZeroFill('node1', 'filled=-20 free=90')).toEqual({
      vm: 'node1',
      filledMib: 0,
      freeMib: 90,
      kernelZeroes: false,
      releasedMib: 0,
      pagedOutMib: 0,
    });
    expect(parseZeroFill('node1', 'sh: 1: cannot create')).toEqual({
      vm: 'node1',
      filledMib: 0,
      freeMib: 0,
      kernelZeroes: false,
      releasedMib: 0,
      pagedOutMib: 0,
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
      releasedMib: 0,
      pagedOutMib: 0,
    });
    expect(host.calls).toEqual([{ argv: ['sh', '-c', zeroFreeMemoryScript()], sudo: true }]);
  });
});
