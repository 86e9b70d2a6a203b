import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KlabError } from '../../../src/model/errors.js';
import { fetchArtifact } from '../../../src/stacks/cache.js';
import type { Artifact } from '../../../src/stacks/manifest.js';
import {
  parseAuthChallenge,
  parseImageReference,
  pullImage,
  repoTag,
} from '../../../src/stacks/registry.js';
import { type FakeRegistry, startFakeRegistry } from '../../helpers/fake-registry.js';

let registry: FakeRegistry;
const config = Buffer.from(
  JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
);
const layer = gzipSync(Buffer.from('not really a tarball, but a blob with a digest'));

beforeAll(async () => {
  registry = await startFakeRegistry([
    { repository: 'library/traefik', tag: 'v1.7', config, layers: [layer] },
    {
      repository: 'library/broken',
      tag: '1',
      config,
      layers: [gzipSync(Buffer.from('another layer'))],
      corruptFirstLayer: true,
    },
  ]);
});

afterAll(async () => {
  await registry.close();
});

describe('image references', () => {
  it('parses registry/repository:tag and names images as docker does', () => {
    const hub = parseImageReference('registry-1.docker.io/library/traefik:v1.7');
    expect(hub).toEqual({
      registry: 'registry-1.docker.io',
      repository: 'library/traefik',
      tag: 'v1.7',
    });
    expect(repoTag(hub)).toBe('traefik:v1.7');
    expect(repoTag(parseImageReference('registry.k8s.io/pause:3.1'))).toBe(
      'registry.k8s.io/pause:3.1',
    );
    expect(() => parseImageReference('traefik')).toThrow(KlabError);
  });

  it('reads bearer challenges', () => {
    expect(
      parseAuthChallenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/traefik:pull"',
      ),
    ).toEqual({
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
      scope: 'repository:library/traefik:pull',
    });
    expect(parseAuthChallenge('Basic realm="x"')).toBeUndefined();
  });
});

describe('pulling from a registry without Docker', () => {
  it('authenticates, picks linux/amd64, verifies digests and writes a docker-load archive', async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'klab-pull-'));
    const out = path.join(work, 'traefik.tar');
    await pullImage('registry-1.docker.io/library/traefik:v1.7', {
      out,
      work,
      baseUrl: registry.base,
    });
    const files = String((await execa('tar', ['-tf', out])).stdout)
      .split('\n')
      .sort();
    expect(files).toHaveLength(3);
    expect(files).toContain('manifest.json');
    await execa('tar', ['-xf', out, '-C', work, 'manifest.json']);
    const manifest = JSON.parse(await readFile(path.join(work, 'manifest.json'), 'utf8'));
    expect(manifest[0].RepoTags).toEqual(['traefik:v1.7']);
    expect(manifest[0].Layers).toHaveLength(1);
    // The token went to the registry, never to the CDN host the blobs were redirected to.
    const cdn = registry.requests.filter((r) => r.path.startsWith('/cdn/'));
    expect(cdn.length).toBe(2);
    expect(cdn.map((r) => [r.authorization, r.host?.split(':')[0]])).toEqual([
      [undefined, 'localhost'],
      [undefined, 'localhost'],
    ]);
  });

  it('refuses a layer whose content does not match its digest', async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'klab-pull-'));
    const error = await pullImage('registry-1.docker.io/library/broken:1', {
      out: path.join(work, 'b.tar'),
      work,
      baseUrl: registry.base,
    }).catch((e) => e);
    expect((error as KlabError).code).toBe('KLAB_CHECKSUM_MISMATCH');
  });

  it('is used by the cache for image artifacts, through a registry mirror', async () => {
    const image: Artifact = {
      id: 'traefik-image',
      kind: 'image',
      version: 'v1.7',
      description: 'test',
      file: 'traefik-v1.7.tar',
      source: { type: 'image', reference: 'registry-1.docker.io/library/traefik:v1.7' },
      checksumSource: 'test',
      install: { on: 'nodes', to: 'docker load' },
    };
    const root = await mkdtemp(path.join(os.tmpdir(), 'klab-cache-'));
    const mirrors = { bases: {}, dirs: [], registries: { 'registry-1.docker.io': registry.base } };
    const first = await fetchArtifact(image, { expected: undefined, mirrors, root });
    expect(first.source).toBe(
      `registry+${registry.base}#registry-1.docker.io/library/traefik:v1.7`,
    );
    const again = await fetchArtifact(image, { expected: first.sha256, mirrors, root });
    expect([again.source, again.downloaded]).toEqual(['cache', 0]);
  });
});
