import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { tarArchiver } from '../../../src/adapters/tar.js';
import { compressionArgs, subsetArchive, subsetFile } from '../../../src/stacks/subset.js';

async function archive(): Promise<{ file: string; root: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-subset-'));
  await mkdir(path.join(dir, 'src', 'kubernetes', 'bin'), { recursive: true });
  for (const bin of ['kube-apiserver', 'kubelet', 'kubectl']) {
    await writeFile(path.join(dir, 'src', 'kubernetes', 'bin', bin), `#!/bin/true ${bin}\n`);
  }
  const file = path.join(dir, 'kubernetes.tar.gz');
  await execa('tar', ['-czf', file, '-C', path.join(dir, 'src'), 'kubernetes']);
  return { file, root: path.join(dir, 'cache') };
}

describe('per-role subsets of an archive', () => {
  it('holds only the members asked for, gzip-compressed, and is cut once', async () => {
    const { file, root } = await archive();
    const members = ['kubernetes/bin/kubelet', 'kubernetes/bin/kubectl'];
    const [first, second] = await Promise.all([
      subsetArchive(file, 'a'.repeat(64), members, { root }),
      subsetArchive(file, 'a'.repeat(64), [...members].reverse(), { root }),
    ]);
    expect(first).toBe(second);
    expect(first.endsWith('.tar.gz')).toBe(true);
    const listing = (await execa('tar', ['-tzf', first])).stdout.split('\n').sort();
    expect(listing).toEqual(members.sort());
  });

  it('is keyed by the archive checksum and the members', () => {
    const members = ['kubernetes/bin/kubelet'];
    expect(subsetFile('a'.repeat(64), members, '/c')).not.toBe(
      subsetFile('b'.repeat(64), members, '/c'),
    );
    expect(subsetFile('a'.repeat(64), members, '/c')).not.toBe(
      subsetFile('a'.repeat(64), ['kubernetes/bin/kubectl'], '/c'),
    );
  });

  it('fails with the artifact code when a member is not in the archive, leaving nothing behind', async () => {
    const { file, root } = await archive();
    const error = await subsetArchive(file, 'c'.repeat(64), ['kubernetes/bin/nope'], {
      root,
    }).catch((e: unknown) => e);
    expect((error as { code: string }).code).toBe('KLAB_ARTIFACT_UNAVAILABLE');
    expect((await execa('ls', ['-A', root])).stdout).toBe('');
  });

  it('is zstd-compressed when asked for and the host has zstd, and unpacks with the args its name gives', async () => {
    const { file, root } = await archive();
    const members = ['kubernetes/bin/kubelet'];
    const zst = await subsetArchive(file, 'd'.repeat(64), members, { root, compression: 'zstd' });
    expect(zst.endsWith('.tar.zst')).toBe(true);
    // The zstd frame's magic number, then tar reads it back through -I zstd.
    const head = (await execa('od', ['-An', '-tx1', '-N4', zst])).stdout.trim();
    expect(head).toBe('28 b5 2f fd');
    const listing = (await execa('tar', [...compressionArgs(zst), '-tf', zst])).stdout;
    expect(listing.split('\n')).toEqual(members);
    // The gzip subset of the same members is another file: both can be kept.
    const gz = await subsetArchive(file, 'd'.repeat(64), members, { root });
    expect(gz.endsWith('.tar.gz')).toBe(true);
    expect(gz).not.toBe(zst);
  });

  it('falls back to gzip when the host has no zstd program', async () => {
    const { file, root } = await archive();
    const noZstd = { tar: tarArchiver.tar, hasZstd: async () => false };
    const out = await subsetArchive(file, 'e'.repeat(64), ['kubernetes/bin/kubectl'], {
      root,
      compression: 'zstd',
      archiver: noZstd,
    });
    expect(out.endsWith('.tar.gz')).toBe(true);
    expect((await execa('tar', ['-tzf', out])).stdout).toBe('kubernetes/bin/kubectl');
  });

  it('tells tar how an archive is compressed from its name', () => {
    expect(compressionArgs('a.tar.gz')).toEqual(['-z']);
    expect(compressionArgs('docker-18.03.0-ce.tgz')).toEqual(['-z']);
    expect(compressionArgs('etcd.tar.xz')).toEqual(['-J']);
    // -I, not --zstd: tar 1.29 (Ubuntu 18.04) has no --zstd.
    expect(compressionArgs('subset.tar.zst')).toEqual(['-I', 'zstd']);
    expect(compressionArgs('etcd-3.4.23-debs.tar')).toEqual([]);
  });
});
