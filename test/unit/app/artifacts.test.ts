import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { importArtifacts, type StackContext } from '../../../src/app/artifacts.js';
import { boxBuildPaths, localRecipe } from '../../../src/app/box.js';
import type { KlabError } from '../../../src/model/errors.js';
import { nullSink } from '../../../src/model/events.js';
import { sha256File } from '../../../src/model/hash.js';
import { validateSpec } from '../../../src/model/spec-file.js';
import { artifactPath } from '../../../src/stacks/cache.js';
import { type Stack, StackSchema } from '../../../src/stacks/manifest.js';
import { exportBundle } from '../../../src/stacks/ops.js';

let saved: string | undefined;
beforeEach(async () => {
  saved = process.env.KLAB_CACHE_DIR;
  process.env.KLAB_CACHE_DIR = await mkdtemp(path.join(os.tmpdir(), 'klab-cachedir-'));
});
afterEach(() => {
  if (saved === undefined) delete process.env.KLAB_CACHE_DIR;
  else process.env.KLAB_CACHE_DIR = saved;
});

const stack = StackSchema.parse({
  name: 'debian',
  title: 'test',
  versions: { kubernetes: 'v1', etcd: 'v1', flannel: 'v1', docker: 'v1' },
  differences: [],
  artifacts: [
    {
      id: 'box',
      kind: 'box',
      version: 'debian-12',
      description: 'the box',
      file: 'debian-12.box',
      source: { type: 'build', recipe: 'test' },
      checksumSource: 'test',
      install: { on: 'all', to: 'boot' },
    },
  ],
}) as Stack;

async function bundleWithBox(): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'klab-src-'));
  const box = artifactPath(stack.artifacts[0] as Stack['artifacts'][0], root);
  await (await import('node:fs/promises')).mkdir(path.dirname(box), { recursive: true });
  await writeFile(box, 'box bytes');
  const lock = {
    version: 1 as const,
    pins: { 'debian/box@debian-12': { sha256: await sha256File(box), source: 't', pinnedAt: 't' } },
  };
  const bundle = path.join(root, 'b.tar');
  await exportBundle(stack, lock, bundle, { root, box: { name: 'klab/debian-12', file: box } });
  return bundle;
}

async function context(): Promise<StackContext> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-lab-'));
  return {
    dir,
    spec: validateSpec({}, 'l', 't'),
    stack,
    lock: { version: 1, pins: {} },
    lockFile: path.join(dir, 'klab.lock.json'),
    sink: nullSink,
  };
}

describe('importArtifacts', () => {
  it('registers the box and puts a klab-built box where create looks for it', async () => {
    const bundle = await bundleWithBox();
    const added: string[] = [];
    const ctx = await context();
    const root = await mkdtemp(path.join(os.tmpdir(), 'klab-dst-'));
    await importArtifacts(ctx, bundle, {
      addBox: async (name) => {
        added.push(name);
        return { ok: true, tail: '' };
      },
      stackFor: () => stack,
      root,
    });
    expect(added).toEqual(['klab/debian-12']);
    const recipe = localRecipe('klab/debian-12');
    if (!recipe) throw new Error('no recipe');
    const target = (await boxBuildPaths(recipe)).box;
    expect(target.startsWith(process.env.KLAB_CACHE_DIR ?? '/nowhere')).toBe(true);
    expect(await readFile(target, 'utf8')).toBe('box bytes');
    expect(
      JSON.parse(await readFile(ctx.lockFile, 'utf8')).pins['debian/box@debian-12'],
    ).toBeDefined();
  });

  it('reports a failed box registration as a Vagrant failure, after importing the artifacts', async () => {
    const bundle = await bundleWithBox();
    const root = await mkdtemp(path.join(os.tmpdir(), 'klab-dst-'));
    const error = await importArtifacts(await context(), bundle, {
      addBox: async () => ({ ok: false, tail: 'Error: box already exists' }),
      stackFor: () => stack,
      root,
    }).catch((e: unknown) => e);
    expect((error as KlabError).code).toBe('KLAB_VAGRANT_FAILED');
    expect((error as KlabError).outputTail).toContain('box already exists');
    expect(existsSync(artifactPath(stack.artifacts[0] as Stack['artifacts'][0], root))).toBe(true);
  });
});
