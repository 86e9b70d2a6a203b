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
 *
 * drop_caches leaves the page cache that programs have mapped: mostly their code. On a
 * provisioned VM that is about 200 MiB of the 500-700 it uses (kubelet, Traefik, dockerd
 * and kube-apiserver keep 47-66 MiB of their binaries resident each). Before dropping,
 * klab asks the kernel to evict those pages too (MADV_PAGEOUT through process_madvise,
 * Linux 5.10 and later: a clean file page is freed, nothing else is touched; without swap
 * no program memory moves).
 * The programs read back from disk the few pages they run next: 10-20 MiB in the seconds
 * after, measured on the 2-VM lab (docs/performance.md).
 */
import type { RemoteHost } from '../model/remote.js';

/** Left free while filling, so nothing in the guest runs short (MiB). */
export const ZERO_FILL_MARGIN_MIB = 128;
const MOUNT = '/run/klab-zero';

/**
 * Perl (perl-base is in every Debian and Ubuntu guest): for every process that maps 8 MiB
 * of files or more (the shared libraries' pages stay anyway: the kernel leaves a page that
 * another process maps too), its file-backed mappings, advised MADV_PAGEOUT in batches. The
 * kernel stops a batch at a range it refuses (a locked or special mapping); such a batch is
 * advised again range by range. A kernel without pidfd_open or process_madvise (before
 * 5.10) answers ENOSYS and the program stops there. Syscall numbers: x86_64.
 */
export const PAGEOUT_PROGRAM = `use strict; no warnings;
my ($pidfd_open, $process_madvise, $pageout) = (434, 440, 21);
opendir(my $proc, '/proc') or exit 0;
for my $pid (grep { /^\\d+$/ && $_ != $$ } readdir $proc) {
  open(my $status, '<', "/proc/$pid/status") or next;
  my ($file_kib) = map { /^RssFile:\\s+(\\d+)/ ? $1 : () } <$status>;
  close $status;
  next unless ($file_kib // 0) >= 8192;
  open(my $maps, '<', "/proc/$pid/maps") or next;
  my @ranges;
  while (my $line = <$maps>) {
    my ($span, $perms, $offset, $dev, $inode, $file) = split ' ', $line, 6;
    next unless defined $file && $file =~ m{^/} && $inode ne '0';
    my ($start, $end) = map { hex } split /-/, $span;
    push @ranges, pack('QQ', $start, $end - $start);
  }
  close $maps;
  next unless @ranges;
  my $fd = syscall($pidfd_open, $pid + 0, 0);
  exit 0 if $fd < 0 && $!{ENOSYS};
  next if $fd < 0;
  while (my @batch = splice(@ranges, 0, 512)) {
    my $total = 0;
    $total += (unpack 'QQ', $_)[1] for @batch;
    my $done = syscall($process_madvise, $fd + 0, join('', @batch), scalar(@batch), $pageout, 0);
    next if $done == $total;
    exit 0 if $done < 0 && $!{ENOSYS};
    syscall($process_madvise, $fd + 0, $_, 1, $pageout, 0) for @batch;
  }
  if (open(my $handle, '<&=', $fd)) { close $handle; }
}
`;

/**
 * The script (POSIX sh, as root). Prints "filled=<MiB> free=<MiB> released=<MiB>
 * paged=<MiB>" on its last line (released: how much more was free after the page cache
 * went; paged: the part of it the page-out freed, before the drop).
 */
export function zeroFreeMemoryScript(marginMib = ZERO_FILL_MARGIN_MIB): string {
  return `set -u
dir=${MOUNT}
cleanup() { umount "$dir" 2>/dev/null; rmdir "$dir" 2>/dev/null; return 0; }
trap cleanup EXIT HUP INT TERM
cleanup
memfree() { awk '/^MemFree:/ {print int($2/1024)}' /proc/meminfo; }
before=$(memfree)
if command -v perl >/dev/null 2>&1; then
  perl - <<'KLAB_PAGEOUT' || true
${PAGEOUT_PROGRAM}KLAB_PAGEOUT
fi
paged=$(($(memfree) - before))
sync
echo 3 > /proc/sys/vm/drop_caches
released=$(($(memfree) - before))
if grep -qw 'init_on_free=1' /proc/cmdline; then
  echo "filled=0 free=$(memfree) released=$released paged=$paged kernel=1"
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
echo "filled=$fill free=$(memfree) released=$released paged=$paged"
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
  /** MiB more free after its page cache went, mapped program code included. */
  releasedMib: number;
  /** Of releasedMib, what paging out the programs' mapped code freed (before the drop). */
  pagedOutMib: number;
}

export function parseZeroFill(vm: string, stdout: string): ZeroFillResult {
  const match = /filled=(-?\d+) free=(\d+)/.exec(stdout);
  return {
    vm,
    filledMib: match ? Math.max(0, Number(match[1])) : 0,
    freeMib: match ? Number(match[2]) : 0,
    kernelZeroes: /\bkernel=1\b/.test(stdout),
    releasedMib: mibField(stdout, 'released'),
    pagedOutMib: mibField(stdout, 'paged'),
  };
}

/** A "name=<MiB>" figure of the script's answer; 0 when missing or below 0. */
function mibField(stdout: string, name: string): number {
  return Math.max(0, Number(new RegExp(`\\b${name}=(-?\\d+)`).exec(stdout)?.[1] ?? 0));
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
