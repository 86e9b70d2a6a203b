/**
 * Programs of the stack that klab itself runs on the host: kubectl, cut once from the
 * stack's archive into the cache. Under software emulation every kubectl started inside the
 * master costs seconds of its CPU (a 40 MB Go program loaded and started by an emulated
 * CPU); the same question asked from the host costs a fraction of a second and leaves the
 * master's CPU to the control plane.
 */
import { chmod, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { tarArchiver } from '../adapters/tar.js';
import { cachePath } from '../model/cache-paths.js';
import { sha256 } from '../model/hash.js';
import type { Archiver } from '../model/ports.js';
import { cachedBuild, compressionArgs } from './subset.js';

/** The archive member that is kubectl in a stack's install profile (undefined if none). */
export function kubectlMember(
  archives: readonly { artifact: string; members: readonly string[] }[],
): { artifact: string; member: string } | undefined {
  for (const archive of archives) {
    const member = archive.members.find((entry) => path.posix.basename(entry) === 'kubectl');
    if (member) return { artifact: archive.artifact, member };
  }
  return undefined;
}

/**
 * Whether programs built for the lab's VMs (linux/amd64) run on this host as they are.
 * (Pure: the platform and architecture are passed in.)
 */
export function hostRunsGuestPrograms(platform: string, arch: string): boolean {
  return platform === 'linux' && arch === 'x64';
}

/** Where a member of an archive is kept for the host: keyed by the archive file and member. */
export function hostToolFile(
  archive: string,
  archiveSize: number,
  archiveMtimeMs: number,
  member: string,
  root?: string,
): string {
  const key = sha256(
    JSON.stringify({ archive: path.basename(archive), archiveSize, archiveMtimeMs, member }),
  ).slice(0, 24);
  return path.join(root ?? cachePath('host-tools'), key, path.posix.basename(member));
}

/**
 * The path of `member` of `archive`, unpacked for the host (once; concurrent callers share
 * the work). Throws KLAB_ARTIFACT_UNAVAILABLE when tar cannot take it out.
 */
export async function hostTool(
  archive: string,
  member: string,
  options: { root?: string; archiver?: Archiver } = {},
): Promise<string> {
  const info = await stat(archive);
  const out = hostToolFile(archive, info.size, info.mtimeMs, member, options.root);
  const archiver = options.archiver ?? tarArchiver;
  return cachedBuild(out, async (work) => {
    await archiver.tar([...compressionArgs(archive), '-xf', archive, '-C', work, member], {
      code: 'KLAB_ARTIFACT_UNAVAILABLE',
      what: `taking ${member} out of ${path.basename(archive)} for the host`,
      hint: 'Check the cache with "klab artifacts verify"; rebuild with "klab artifacts build --force".',
    });
    await chmod(path.join(work, member), 0o755);
    await rename(path.join(work, member), out);
  });
}
