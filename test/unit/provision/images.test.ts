/** The images step asks Docker on a node about every image in one SSH exec. */
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import {
  imagesStep,
  parseDockerFacts,
  storeRefusal,
  UNPACK_STORE,
} from '../../../provision/images/index.js';
import type { ImageStore } from '../../../src/stacks/image-store.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const spec = twoVmSpec();

/**
 * A node whose `sh -c` scripts run in a real shell, with a `docker` that knows the images
 * listed (or, lost, a connection that drops before any answer).
 */
async function node(loaded: string[], options: { lost?: boolean; dockerDown?: boolean } = {}) {
  const bin = await mkdtemp(path.join(os.tmpdir(), 'klab-images-'));
  // docker images --format '{{.Repository}}:{{.Tag}}' (the only docker command asked),
  // with one more image than klab wants, whose name contains a wanted one's.
  const docker = options.dockerDown
    ? 'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2\nexit 1'
    : `[ "$1 $2" = "images --format" ] || exit 64\nprintf '%s\\n' ${[...loaded, 'klab/pause:klab-1-old'].map((n) => `'${n}'`).join(' ')}`;
  await writeFile(path.join(bin, 'docker'), `#!/bin/sh\n${docker}\n`);
  await chmod(path.join(bin, 'docker'), 0o755);
  const host = new FakeHost('node1', (argv) => {
    if (argv[0] !== 'sh') return undefined;
    if (options.lost) return { exitCode: 255, stderr: 'connection lost' };
    const stdout = execFileSync('sh', ['-c', argv[2] ?? ''], {
      env: { PATH: `${bin}:${process.env.PATH}` },
      encoding: 'utf8',
    });
    return { stdout };
  });
  const ctx = testStepContext(spec, { node1: host });
  const vm = spec.vms.find((entry) => entry.name === 'node1');
  if (!vm) throw new Error('no node1');
  return { host, ctx, vm };
}

describe('the images step', () => {
  const profile = testStepContext(spec, {}).profile;
  const all = () => [
    profile.pauseImage.image,
    profile.testAppImage.image,
    profile.ingressImage.image,
    profile.dnsImage.image,
  ];

  it('names each image Docker lacks, asking once', async () => {
    const [pause, app, ingress, dns] = all();
    const { host, ctx, vm } = await node([pause ?? '', dns ?? '']);
    expect(await imagesStep.problems?.(ctx, vm)).toEqual([
      `image ${app} is not loaded`,
      `image ${ingress} is not loaded`,
    ]);
    expect(host.calls).toHaveLength(1);
    expect(host.calls[0]?.sudo).toBe(true);
  });

  it('matches whole names: an image whose name only contains a wanted one does not count', async () => {
    const { ctx, vm } = await node([]);
    expect(await imagesStep.problems?.(ctx, vm)).toEqual(
      all().map((image) => `image ${image} is not loaded`),
    );
  });

  it('passes when every image is there', async () => {
    const { ctx, vm } = await node(all());
    expect(await imagesStep.problems?.(ctx, vm)).toEqual([]);
  });

  it('says Docker did not answer, with its error and what to look at, not that images are missing', async () => {
    const { ctx, vm } = await node([], { dockerDown: true });
    const problems = (await imagesStep.problems?.(ctx, vm)) ?? [];
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /^Docker on node1 did not answer `docker images` \(Cannot connect to the Docker daemon.*\): is it running\? sudo systemctl status docker$/,
    );
  });

  it('does not take a lost connection for "every image is there"', async () => {
    const { ctx, vm } = await node(all(), { lost: true });
    expect(await imagesStep.problems?.(ctx, vm)).toEqual([
      'the Docker images on node1 could not be listed',
    ]);
  });
});

describe('the images step with an image store from the host', () => {
  const profile = testStepContext(spec, {}).profile;
  const wanted = [profile.pauseImage, profile.testAppImage, profile.ingressImage, profile.dnsImage];
  const VERSION = '20.10.24+dfsg1';
  const store: ImageStore = {
    file: '/cache/store.tar.gz',
    dockerVersion: VERSION,
    driver: 'overlay2',
    images: wanted.map((image) => image.image),
  };

  /**
   * A node whose Docker starts with `loaded` and `docker info` says `facts`; the host's
   * store is `offered` (gzip by default), and the node has zstd or not.
   */
  function nodeWith(
    facts: string,
    loaded: string[] = [],
    unpackWorks = true,
    { offered = store, guestZstd = true }: { offered?: ImageStore; guestZstd?: boolean } = {},
  ) {
    const have = new Set(loaded);
    const host = new FakeHost('node1', (argv, options) => {
      const script = argv[0] === 'sh' ? (argv[2] ?? '') : '';
      if (script === 'command -v "$1"' && argv[4] === 'zstd')
        return guestZstd ? { stdout: '/usr/bin/zstd\n' } : { exitCode: 1 };
      if (script.includes('docker images --format')) {
        const missing = wanted.filter((image) => !have.has(image.image));
        return {
          stdout: `${missing.map((image) => image.image).join('\n')}\nklab-images-listed\n`,
        };
      }
      if (script === UNPACK_STORE) {
        if (!unpackWorks) return { stdout: 'klab-store-unpacked: no\n' };
        for (const image of wanted) have.add(image.image);
        return { stdout: 'klab-store-unpacked: yes\n' };
      }
      if (argv[0] === 'docker' && argv[1] === 'info') return { stdout: `${facts}\n` };
      if (argv[0] === 'docker' && (argv[1] === 'load' || argv[1] === 'import')) {
        const image = wanted.find((entry) => options.stdinFile === `/c/${entry.artifact}`);
        if (image) have.add(image.image);
        return {};
      }
      return undefined;
    });
    const asked: string[] = [];
    const ctx = testStepContext(
      spec,
      { node1: host },
      {
        artifactFile: (id) => `/c/${id}`,
        imageStore: async (_images, guestDocker) => {
          asked.push(guestDocker);
          return guestDocker === VERSION ? offered : undefined;
        },
      },
    );
    const vm = spec.vms.find((entry) => entry.name === 'node1');
    if (!vm) throw new Error('no node1');
    const loads = () =>
      host.calls.filter((call) => call.argv[0] === 'docker' && call.argv[1] !== 'info');
    return { host, ctx, vm, asked, loads };
  }

  it("a fresh Docker of the store's version unpacks it, with its data root, and loads nothing", async () => {
    const { host, ctx, vm, asked, loads } = nodeWith(`${VERSION} overlay2 /var/lib/docker 0 0`);
    await imagesStep.apply(ctx, vm);
    expect(asked).toEqual([VERSION]);
    const unpack = host.calls.find((call) => call.argv[2] === UNPACK_STORE);
    expect(unpack).toMatchObject({ sudo: true, stdinFile: store.file });
    expect(unpack?.argv.slice(-2)).toEqual(['/var/lib/docker', 'gzip']);
    expect(loads()).toEqual([]);
    expect(await imagesStep.problems?.(ctx, vm)).toEqual([]);
  });

  it('a zstd store is unpacked with zstd where the node has it, and loaded image by image where not', async () => {
    const zst = { ...store, file: '/cache/store.tar.zst' };
    const facts = `${VERSION} overlay2 /var/lib/docker 0 0`;
    const withZstd = nodeWith(facts, [], true, { offered: zst });
    await imagesStep.apply(withZstd.ctx, withZstd.vm);
    const unpack = withZstd.host.calls.find((call) => call.argv[2] === UNPACK_STORE);
    expect(unpack).toMatchObject({ stdinFile: zst.file });
    expect(unpack?.argv.at(-1)).toBe('zstd');
    expect(withZstd.loads()).toEqual([]);

    const without = nodeWith(facts, [], true, { offered: zst, guestZstd: false });
    await imagesStep.apply(without.ctx, without.vm);
    expect(without.host.calls.some((call) => call.argv[2] === UNPACK_STORE)).toBe(false);
    expect(without.loads()).toHaveLength(4);
    expect(await imagesStep.problems?.(without.ctx, without.vm)).toEqual([]);
  });

  it('the unpack script asks tar for the compression it is given', async () => {
    // The script's first two lines: the root, then tar's arguments for $2.
    const head = `${UNPACK_STORE.split('\n').slice(0, 2).join('\n')}; echo "$@"`;
    for (const [compression, args] of [
      ['zstd', '-I zstd'],
      ['gzip', '-z'],
    ]) {
      const said = await execa('sh', ['-c', head, 'x', '/r', compression ?? '']);
      expect(said.stdout).toBe(args);
    }
  });

  it('another Docker version, a failed unpack or images already there: each missing image is loaded', async () => {
    const cases = [
      nodeWith(`24.0.5 overlay2 /var/lib/docker 0 0`),
      nodeWith(`${VERSION} overlay2 /var/lib/docker 0 0`, [], false),
      nodeWith(`${VERSION} overlay2 /var/lib/docker 0 1`, [profile.pauseImage.image]),
    ];
    const loaded = [4, 4, 3];
    for (const [i, { host, ctx, vm, loads }] of cases.entries()) {
      await imagesStep.apply(ctx, vm);
      expect(loads()).toHaveLength(loaded[i] ?? -1);
      expect(await imagesStep.problems?.(ctx, vm)).toEqual([]);
      if (i !== 1) expect(host.calls.some((call) => call.argv[2] === UNPACK_STORE)).toBe(false);
    }
  });

  it("reads docker info's line and refuses a store another Docker made, or a Docker in use", () => {
    const facts = parseDockerFacts(`${VERSION} overlay2 /var/lib/docker 0 0\n`);
    expect(facts).toEqual({
      version: VERSION,
      driver: 'overlay2',
      root: '/var/lib/docker',
      containers: 0,
      images: 0,
    });
    expect(parseDockerFacts('Cannot connect to the Docker daemon')).toBeUndefined();
    if (!facts) throw new Error('no facts');
    expect(storeRefusal(facts, store)).toBeUndefined();
    expect(storeRefusal({ ...facts, version: '18.03.0-ce' }, store)).toMatch(/Docker 18\.03/);
    expect(storeRefusal({ ...facts, driver: 'vfs' }, store)).toMatch(/storage driver vfs/);
    expect(storeRefusal({ ...facts, containers: 2 }, store)).toMatch(/2 containers/);
  });
});
