/**
 * Per-role archives: a VM receives only the programs its roles run (a node never gets
 * kube-apiserver), cut once from the stack's archive on the host, compressed for the trip
 * over SSH (zstd when the host and the VM both have it: it unpacks several times faster than
 * gzip on a VM under software emulation; gzip otherwise) and kept in the cache under a key of
 * the archive's SHA-256 and the members.
 */
import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { tarArchiver } from '../adapters/tar.js';
import { cachePath } from '../model/cache-paths.js';
import { sha256 } from '../model/hash.js';
import type { Archiver } from '../model/ports.js';

/** How a subset is compressed for the trip to a VM. */
export type SubsetCompression = 'zstd' | 'gzip';

/**
 * zstd's level for subsets: cut once per stack on the host (a few seconds more than gzip
 * there), unpacked on every VM at the same speed whatever the level.
 */
const ZSTD = 'zstd -12 -T0';

const pending = new Map<string, Promise<string>>();

/** The cache file for these members of an archive with this SHA-256 (pure). */
export function subsetFile(
  archiveSha: string,
  members: readonly string[],
  root?: string,
  compression: SubsetCompression = 'gzip',
): string {
  const key = sha256(JSON.stringify({ archiveSha, members: [...members].sort() })).slice(0, 24);
  return path.join(
    root ?? cachePath('subsets'),
    `${key}.tar.${compression === 'zstd' ? 'zst' : 'gz'}`,
  );
}

/**
 * tar's arguments for how an archive file is compressed, from its name, to unpack it. zstd
 * through -I (GNU tar runs `zstd -d`), which tar 1.29 (Ubuntu 18.04) knows too; --zstd came
 * with 1.31.
 */
export function compressionArgs(file: string): string[] {
  if (/\.(tgz|tar\.gz)$/.test(file)) return ['-z'];
  if (/\.(txz|tar\.xz)$/.test(file)) return ['-J'];
  if (/\.(tzst|tar\.zst)$/.test(file)) return ['-I', 'zstd'];
  return [];
}

/**
 * The cache file `out`, made by `make` in a scratch directory beside it when missing. Made
 * once: concurrent callers for the same file share one build, and a failed build is tried
 * again by the next caller. `make` must finish by renaming its result to `out`.
 */
export function cachedBuild(out: string, make: (work: string) => Promise<void>): Promise<string> {
  let job = pending.get(out);
  if (!job) {
    job = (async () => {
      if (await stat(out).catch(() => undefined)) return out;
      await mkdir(path.dirname(out), { recursive: true });
      const work = await mkdtemp(`${out}.work-`);
      try {
        await make(work);
        return out;
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    })();
    pending.set(out, job);
    job.catch(() => pending.delete(out));
  }
  return job;
}

/**
 * Path of a .tar.gz or .tar.zst with just `members` of `archive` (made when missing;
 * concurrent callers for the same subset share one build). zstd is asked for, and given
 * where the host has the zstd program; otherwise the subset is gzip-compressed (the file
 * name says which, and so how to unpack it).
 */
export async function subsetArchive(
  archive: string,
  archiveSha: string,
  members: readonly string[],
  options: { root?: string; archiver?: Archiver; compression?: SubsetCompression } = {},
): Promise<string> {
  const archiver = options.archiver ?? tarArchiver;
  const compression =
    options.compression === 'zstd' && (await archiver.hasZstd()) ? 'zstd' : 'gzip';
  const out = subsetFile(archiveSha, members, options.root, compression);
  return cachedBuild(out, async (work) => {
    const failure = {
      code: 'KLAB_ARTIFACT_UNAVAILABLE' as const,
      what: `cutting ${members.join(', ')} out of ${path.basename(archive)}`,
      hint: 'Check the cache with "klab artifacts verify"; rebuild with "klab artifacts build --force".',
    };
    await archiver.tar(
      [...compressionArgs(archive), '-xf', archive, '-C', work, ...members],
      failure,
    );
    const packed = path.join(work, `subset${path.extname(out)}`);
    await archiver.tar(
      [...(compression === 'zstd' ? ['-I', ZSTD] : ['-z']), '-cf', packed, '-C', work, ...members],
      failure,
    );
    await rename(packed, out);
  });
}
