/**
 * Per-role archives: a VM receives only the programs its roles run (a node never gets
 * kube-apiserver), cut once from the stack's archive on the host, gzip-compressed for the
 * trip over SSH and kept in the cache under a key of the archive's SHA-256 and the members.
 */
import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { tarArchiver } from '../adapters/tar.js';
import { cachePath } from '../model/cache-paths.js';
import { sha256 } from '../model/hash.js';
import type { Archiver } from '../model/ports.js';

const pending = new Map<string, Promise<string>>();

/** The cache file for these members of an archive with this SHA-256 (pure). */
export function subsetFile(archiveSha: string, members: readonly string[], root?: string): string {
  const key = sha256(JSON.stringify({ archiveSha, members: [...members].sort() })).slice(0, 24);
  return path.join(root ?? cachePath('subsets'), `${key}.tar.gz`);
}

/** tar's flag for how an archive file is compressed, from its name. */
export function compressionFlag(file: string): '-z' | '-J' | '' {
  if (/\.(tgz|tar\.gz)$/.test(file)) return '-z';
  if (/\.(txz|tar\.xz)$/.test(file)) return '-J';
  return '';
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
 * Path of a .tar.gz with just `members` of `archive` (made when missing; concurrent callers
 * for the same subset share one build).
 */
export function subsetArchive(
  archive: string,
  archiveSha: string,
  members: readonly string[],
  options: { root?: string; archiver?: Archiver } = {},
): Promise<string> {
  const out = subsetFile(archiveSha, members, options.root);
  const archiver = options.archiver ?? tarArchiver;
  return cachedBuild(out, async (work) => {
    const failure = {
      code: 'KLAB_ARTIFACT_UNAVAILABLE' as const,
      what: `cutting ${members.join(', ')} out of ${path.basename(archive)}`,
      hint: 'Check the cache with "klab artifacts verify"; rebuild with "klab artifacts build --force".',
    };
    const flag = compressionFlag(archive);
    await archiver.tar([...(flag ? [flag] : []), '-xf', archive, '-C', work, ...members], failure);
    const packed = path.join(work, 'subset.tar.gz');
    await archiver.tar(['-czf', packed, '-C', work, ...members], failure);
    await rename(packed, out);
  });
}
