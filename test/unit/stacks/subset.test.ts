import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { compressionFlag, subsetArchive, subsetFile } from '../../../src/stacks/subset.js';

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

  it('tells tar how an archive is compressed from its name', () => {
    expect(compressionFlag('a.tar.gz')).toBe('-z');
    expect(compressionFlag('docker-18.03.0-ce.tgz')).toBe('-z');
    expect(compressionFlag('etcd.tar.xz')).toBe('-J');
    expect(compressionFlag('etcd-3.4.23-debs.tar')).toBe('');
  });
});
