/** The host half of the image store, with a fake host: when it is made, reused, or not. */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostImageStore, type StoreHost } from '../../../src/app/image-store.js';
import type { KlabEvent } from '../../../src/model/events.js';
import type { ProcessResult } from '../../../src/model/ports.js';
import { installProfile } from '../../../src/stacks/install.js';

const profile = installProfile('debian');
const images = [profile.pauseImage, profile.testAppImage];
const VERSION = '20.10.24+dfsg1';

function done(stdout: string, exitCode = 0): ProcessResult {
  return { command: [], exitCode, stdout, stderr: '', timedOut: false, notFound: false };
}

async function setup(
  options: { root?: boolean; dockerd?: string; recipeFails?: boolean; zstd?: boolean } = {},
) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-image-store-'));
  for (const name of ['pause.tar', 'app.tar.gz']) await writeFile(path.join(dir, name), name);
  const runs: string[][] = [];
  const events: KlabEvent[] = [];
  const host: StoreHost = {
    isRoot: () => options.root ?? true,
    root: path.join(dir, 'stores'),
    async run(argv, runOptions) {
      runs.push([...argv]);
      if (argv[0] === 'dockerd') {
        return options.dockerd === undefined
          ? { ...done('', 127), notFound: true }
          : done(`Docker version ${options.dockerd}, build 297e128\n`);
      }
      if (argv[0] === 'zstd') {
        return options.zstd === false ? { ...done('', 127), notFound: true } : done('v1.5.4\n');
      }
      // The recipe: writes --out and says what made it.
      if (options.recipeFails) return { ...done('', 70), stderr: 'the private dockerd exited' };
      const out = argv[argv.indexOf('--out') + 1] ?? '';
      await writeFile(out, 'store');
      runOptions?.onLine?.('klab-progress: packing the store', 'stdout');
      runOptions?.onLine?.(`klab-image-store: ${options.dockerd} overlay2`, 'stdout');
      return done('');
    },
  };
  const file = (id: string) => path.join(dir, id === 'pause-image' ? 'pause.tar' : 'app.tar.gz');
  const store = hostImageStore(file, { emit: (event) => events.push(event) }, host);
  const notices = () =>
    events.flatMap((event) => (event.kind === 'notice' ? [`${event.code}: ${event.text}`] : []));
  return { store, runs, notices, dir };
}

describe("the host's image store", () => {
  it('is made once by the recipe with every image, then reused', async () => {
    const { store, runs, notices, dir } = await setup({ dockerd: VERSION });
    const made = await store(images, VERSION);
    expect(made).toMatchObject({
      dockerVersion: VERSION,
      driver: 'overlay2',
      images: ['klab/pause:klab-1', 'klab/php-apache:debian-12-slim'],
    });
    expect(await readFile(made?.file ?? '', 'utf8')).toBe('store');
    // zstd-compressed, as the host has zstd: the recipe is told by the name of --out.
    expect(made?.file.endsWith('/store.tar.zst')).toBe(true);
    const recipe = runs.find((argv) => argv[0] === 'bash') ?? [];
    expect(recipe.slice(recipe.indexOf('--load'))).toEqual([
      '--load',
      path.join(dir, 'pause.tar'),
      '--load',
      path.join(dir, 'app.tar.gz'),
    ]);
    expect(await store(images, VERSION)).toEqual(made);
    expect(runs.filter((argv) => argv[0] === 'bash')).toHaveLength(1);
    expect(runs.filter((argv) => argv[0] === 'dockerd')).toHaveLength(1);
    expect(notices()).toEqual([]);
  });

  it('is gzip-compressed on a host without zstd', async () => {
    const { store, runs } = await setup({ dockerd: VERSION, zstd: false });
    const made = await store(images, VERSION);
    expect(made?.file.endsWith('/store.tar.gz')).toBe(true);
    const recipe = runs.find((argv) => argv[0] === 'bash') ?? [];
    expect(recipe[recipe.indexOf('--out') + 1]?.endsWith('store.tar.gz')).toBe(true);
  });

  it('is not made, and why is said once, without root, without dockerd, or for another Docker', async () => {
    const cases: [Parameters<typeof setup>[0], RegExp][] = [
      [{ root: false, dockerd: VERSION }, /not running as root/],
      [{}, /no dockerd on this host/],
      [{ dockerd: '24.0.5' }, /host's Docker is 24\.0\.5, the VMs' 20\.10\.24\+dfsg1/],
    ];
    for (const [options, reason] of cases) {
      const { store, runs, notices } = await setup(options);
      expect(await store(images, VERSION)).toBeUndefined();
      expect(await store(images, VERSION)).toBeUndefined();
      expect(runs.filter((argv) => argv[0] === 'bash')).toEqual([]);
      expect(notices()).toHaveLength(1);
      expect(notices()[0]).toMatch(/^IMAGE_STORE_UNUSED: images: each VM loads them itself/);
      expect(notices()[0]).toMatch(reason);
    }
  });

  it('a failed recipe is said, the VMs load the images, and the next command tries again', async () => {
    const { store, runs, notices } = await setup({ dockerd: VERSION, recipeFails: true });
    expect(await store(images, VERSION)).toBeUndefined();
    expect(notices()[0]).toMatch(/making it failed: .*exited 70: the private dockerd exited/);
    expect(await store(images, VERSION)).toBeUndefined();
    expect(runs.filter((argv) => argv[0] === 'bash')).toHaveLength(2);
  });
});
