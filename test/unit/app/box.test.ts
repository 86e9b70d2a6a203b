import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boxAddArgs } from '../../../src/adapters/vagrant.js';
import {
  type BoxDeps,
  boxBuildPaths,
  boxMetadata,
  boxVersionAt,
  ensureLocalBox,
  localRecipe,
  registeredBoxVersion,
} from '../../../src/app/box.js';
import { nullSink } from '../../../src/model/events.js';

describe('a klab-built box is registered with Vagrant as its own version', () => {
  const savedCache = process.env.KLAB_CACHE_DIR;
  let cache = '';
  beforeAll(async () => {
    cache = await mkdtemp(path.join(os.tmpdir(), 'klab-box-'));
    process.env.KLAB_CACHE_DIR = cache;
  });
  afterAll(() => {
    if (savedCache === undefined) delete process.env.KLAB_CACHE_DIR;
    else process.env.KLAB_CACHE_DIR = savedCache;
  });

  function deps(installed: string[]): BoxDeps & { added: [string, string][] } {
    const added: [string, string][] = [];
    return {
      added,
      sink: nullSink,
      runBuildScript: async () => {
        throw new Error('this test builds nothing: the box file is in the cache');
      },
      isRoot: () => true,
      missingTools: async () => [],
      installedBoxes: async () => installed,
      addBox: async (name, file) => {
        added.push([name, file]);
        return { ok: true, tail: '' };
      },
    };
  }

  it('adds a build through box metadata with a version of its own, which the Vagrantfile pins', async () => {
    const recipe = localRecipe('klab/debian-12');
    if (!recipe) throw new Error('no recipe');
    const paths = await boxBuildPaths(recipe);
    await mkdir(paths.dir, { recursive: true });
    await writeFile(paths.box, 'a built box');

    const first = deps([]);
    await ensureLocalBox(recipe, first);
    expect(first.added).toEqual([['klab/debian-12', path.join(paths.dir, 'metadata.json')]]);
    const metadata = JSON.parse(await readFile(path.join(paths.dir, 'metadata.json'), 'utf8'));
    const version = await registeredBoxVersion('klab/debian-12');
    expect(version).toMatch(/^1\.\d{10}\.0$/);
    expect(metadata).toEqual({
      name: 'klab/debian-12',
      versions: [{ version, providers: [{ name: 'libvirt', url: `file://${paths.box}` }] }],
    });

    // Registered and unchanged: nothing is added again.
    const again = deps(['klab/debian-12']);
    await ensureLocalBox(recipe, again);
    expect(again.added).toEqual([]);
    expect(await registeredBoxVersion('klab/debian-12')).toBe(version);
  });

  it('adds again a build an older klab registered without a version', async () => {
    const recipe = localRecipe('klab/debian-12');
    if (!recipe) throw new Error('no recipe');
    const paths = await boxBuildPaths(recipe);
    await writeFile(
      path.join(cache, 'boxes', 'registered.json'),
      JSON.stringify({ 'klab/debian-12': paths.key }),
    );
    expect(await registeredBoxVersion('klab/debian-12')).toBeUndefined();
    const legacy = deps(['klab/debian-12']);
    await ensureLocalBox(recipe, legacy);
    expect(legacy.added).toHaveLength(1);
    expect(await registeredBoxVersion('klab/debian-12')).toMatch(/^1\.\d+\.0$/);
    expect(await registeredBoxVersion('generic/ubuntu1804')).toBeUndefined();
  });

  it('versions grow with time and are what Vagrant accepts (X.Y.Z)', () => {
    expect(boxVersionAt(1_765_130_000_123)).toBe('1.1765130000.0');
    expect(boxVersionAt(1_765_130_100_000) > boxVersionAt(1_765_130_000_000)).toBe(true);
    expect(JSON.parse(boxMetadata('klab/x', '1.2.0', '/c/box.box')).versions[0].providers).toEqual([
      { name: 'libvirt', url: 'file:///c/box.box' },
    ]);
  });

  it('vagrant box add takes a metadata file without --name, a box file with it', () => {
    expect(boxAddArgs('klab/debian-12', '/c/metadata.json')).toEqual([
      'box',
      'add',
      '--force',
      '--provider',
      'libvirt',
      '/c/metadata.json',
    ]);
    expect(boxAddArgs('klab/debian-12', '/c/box.box')).toEqual([
      'box',
      'add',
      '--force',
      '--name',
      'klab/debian-12',
      '/c/box.box',
    ]);
    expect(boxAddArgs('generic/ubuntu1804', 'generic/ubuntu1804')).toEqual([
      'box',
      'add',
      'generic/ubuntu1804',
      '--provider',
      'libvirt',
    ]);
  });
});
