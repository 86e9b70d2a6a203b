/**
 * Small checkpoints: QEMU saves a guest page that holds only zeros as a flag of a few
 * bytes, and every other page whole. A guest that has run for a while has almost no zero
 * pages left: its page cache and the pages it freed still hold old data. So before a
 * snapshot klab asks every running guest to drop its clean page cache and to write zeros
 * over its free memory once (a tmpfs filled from /dev/zero, then unmounted): the freed
 * pages then hold zeros and cost nothing in the saved state. Running programs and their
 * data are not touched; the page cache refills from disk as the guest reads again.
 * A guest booted with init_on_free=1 (klab's own box) zeroes every page as it frees it:
 * there dropping the page cache is enough, and the fill (minutes under TCG on a busy
 * guest) is skipped.
 */
import type { RemoteHost } from '../model/remote.js';

/** Left free while filling, so nothing in the guest runs short (MiB). */
export const ZERO_FILL_MARGIN_MIB = 128;
const MOUNT = '/run/klab-zero';

/** The script (POSIX sh, as root). Prints "filled=<MiB> free=<MiB>" on its last line. */
export function zeroFreeMemoryScript(marginMib = ZERO_FILL_MARGIN_MIB): string {
  return `set -u
dir=${MOUNT}
cleanup() { umount "$dir" 2>/dev/null; rmdir "$dir" 2>/dev/null; return 0; }
trap cleanup EXIT HUP INT TERM
cleanup
sync
echo 3 > /proc/sys/vm/drop_caches
if grep -qw 'init_on_free=1' /proc/cmdline; then
  free=$(awk '/^MemFree:/ {print int($2/1024)}' /proc/meminfo)
  echo "filled=0 free=$free kernel=1"
  exit 0
fi
avail=$(awk '/^MemAvailable:/ {print int($2/1024)}' /proc/meminfo)
fill=$((avail - ${marginMib}))
if [ "$fill" -gt 16 ]; then
  mkdir -p "$dir"
  if mount -t tmpfs -o "size=\${fill}m,mode=0700" klab-zero "$dir"; then
    dd if=/dev/zero of="$dir/fill" bs=1M count="$fill" 2>/dev/null || true
  else
    fill=0
  fi
  cleanup
else
  fill=0
fi
free=$(awk '/^MemFree:/ {print int($2/1024)}' /proc/meminfo)
echo "filled=$fill free=$free"
`;
}

export interface ZeroFillResult {
  vm: string;
  /** MiB of free memory overwritten with zeros (0 when the guest could not). */
  filledMib: number;
  /** MiB free afterwards. */
  freeMib: number;
  /** The guest's kernel zeroes pages as it frees them (init_on_free): nothing to fill. */
  kernelZeroes: boolean;
}

export function parseZeroFill(vm: string, stdout: string): ZeroFillResult {
  const match = /filled=(-?\d+) free=(\d+)/.exec(stdout);
  return {
    vm,
    filledMib: match ? Math.max(0, Number(match[1])) : 0,
    freeMib: match ? Number(match[2]) : 0,
    kernelZeroes: /\bkernel=1\b/.test(stdout),
  };
}

/** Drops the page cache and zeroes the free memory of one guest; never throws. */
export async function zeroFreeMemory(host: RemoteHost): Promise<ZeroFillResult> {
  const result = await host
    .run(['sh', '-c', zeroFreeMemoryScript()], {
      sudo: true,
      allowFailure: true,
      timeoutMs: 5 * 60_000,
    })
    .catch(() => undefined);
  return parseZeroFill(host.name, result?.stdout ?? '');
}
