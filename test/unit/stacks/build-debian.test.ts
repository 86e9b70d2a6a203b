import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { KlabError } from '../../../src/model/errors.js';
import { nullSink } from '../../../src/model/events.js';
import { buildDebianStack, type DebianBuildDeps } from '../../../src/stacks/build-debian.js';
import type { LockFile } from '../../../src/stacks/cache.js';
import { loadStack } from '../../../src/stacks/index.js';

const stack = loadStack('debian');
const nonBox = {
  ...stack,
  artifacts: stack.artifacts.filter((a) => a.id === 'flannel' || a.id === 'etcd'),
};

/** Fake recipes: each writes its --out file; the image recipes are not in this subset. */
function deps(overrides: Partial<DebianBuildDeps> = {}, runs: string[] = []): DebianBuildDeps {
  return {
    sink: nullSink,
    isRoot: () => true,
    ensureBox: async () => ({ box: '/nonexistent.box', rootfsTar: '/nonexistent.tar', key: 'k1' }),
    run: async (argv) => {
      runs.push(path.basename(argv[1] ?? ''));
      const out = argv[argv.indexOf('--out') + 1] ?? '';
      await writeFile(out, `built by ${argv[1]}`);
      return { exitCode: 0, tail: '' };
    },
    ...overrides,
  };
}

async function root() {
  return mkdtemp(path.join(os.tmpdir(), 'klab-build-'));
}

describe('buildDebianStack', () => {
  it('builds each artifact once, pins it, and reuses it while its inputs stay the same', async () => {
    const r = await root();
    const lock: LockFile = { version: 1, pins: {} };
    const runs: string[] = [];
    const first = await buildDebianStack(
      nonBox,
      lock,
      { mirror: 'http://m', suite: 'bookworm', root: r },
      deps({}, runs),
    );
    expect(first).toEqual({ built: ['etcd', 'flannel'], reused: [] });
    expect(Object.keys(lock.pins).sort()).toEqual([
      'debian/etcd@3.4.23',
      'debian/flannel@v0.28.10',
    ]);
    // A new lab (empty lock) reuses the cache and gets the pins.
    const fresh: LockFile = { version: 1, pins: {} };
    const second = await buildDebianStack(
      nonBox,
      fresh,
      { mirror: 'http://m', suite: 'bookworm', root: r },
      deps({}, runs),
    );
    expect(second).toEqual({ built: [], reused: ['etcd', 'flannel'] });
    const shas = (l: LockFile) =>
      Object.fromEntries(Object.entries(l.pins).map(([k, v]) => [k, v.sha256]));
    expect(shas(fresh)).toEqual(shas(lock));
    // flannel needs nothing of the box: it builds before the box is there.
    expect(runs).toEqual(['flannel.sh', 'debs.sh']);
    // Another mirror is another input for the package sets, not for flannel.
    const third = await buildDebianStack(
      nonBox,
      fresh,
      { mirror: 'http://other', suite: 'bookworm', root: r },
      deps({}, runs),
    );
    expect(third).toEqual({ built: ['etcd'], reused: ['flannel'] });
  });

  it('compiles Kubernetes and builds the Go modules while the box is made; the artifacts that need the box wait for it', async () => {
    const subset = {
      ...stack,
      artifacts: stack.artifacts.filter((a) =>
        ['box', 'kubernetes', 'etcd', 'flannel', 'coredns'].includes(a.id),
      ),
    };
    const order: string[] = [];
    const startedRecipes = new Set<string>();
    let allStarted: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      allStarted = resolve;
    });
    const boxFile = path.join(await root(), 'klab.box');
    await writeFile(boxFile, 'a box');
    const result = await buildDebianStack(
      subset,
      { version: 1, pins: {} },
      { mirror: 'http://m', suite: 'bookworm', root: await root() },
      deps({
        // The box is done only once Kubernetes, flannel and CoreDNS have been built or are
        // building: built one after the other, this would never end.
        ensureBox: async () => {
          await started;
          order.push('box made');
          return { box: boxFile, rootfsTar: '/nonexistent.tar', key: 'k1' };
        },
        run: async (argv) => {
          const name = path.basename(argv[1] ?? '');
          order.push(`${name} runs`);
          startedRecipes.add(name);
          if (['kubernetes.sh', 'flannel.sh', 'coredns.sh'].every((n) => startedRecipes.has(n))) {
            allStarted();
          }
          await writeFile(argv[argv.indexOf('--out') + 1] ?? '', `built by ${name}`);
          return { exitCode: 0, tail: '' };
        },
      }),
    );
    expect(order.slice(0, 3).sort()).toEqual([
      'coredns.sh runs',
      'flannel.sh runs',
      'kubernetes.sh runs',
    ]);
    // The Go modules share one lane, in the stack's order.
    expect(order.indexOf('flannel.sh runs')).toBeLessThan(order.indexOf('coredns.sh runs'));
    expect(order.slice(3)).toEqual(['box made', 'debs.sh runs']);
    // Reported in the stack's order all the same.
    expect(result.built).toEqual(subset.artifacts.map((a) => a.id));
  });

  it('a box that fails is reported after the Kubernetes compile ends, not while it runs', async () => {
    const order: string[] = [];
    const error = await buildDebianStack(
      { ...stack, artifacts: stack.artifacts.filter((a) => a.id === 'kubernetes') },
      { version: 1, pins: {} },
      { mirror: 'http://m', suite: 'bookworm', root: await root() },
      deps({
        ensureBox: async () => {
          order.push('box failed');
          throw new Error('debootstrap failed');
        },
        run: async (argv) => {
          await new Promise((resolve) => setTimeout(resolve, 50));
          order.push('kubernetes done');
          await writeFile(argv[argv.indexOf('--out') + 1] ?? '', 'k8s');
          return { exitCode: 0, tail: '' };
        },
      }),
    ).catch((e: unknown) => e);
    expect((error as Error).message).toBe('debootstrap failed');
    expect(order).toEqual(['box failed', 'kubernetes done']);
  });

  it('names the failing recipe and shows its output', async () => {
    const error = await buildDebianStack(
      { ...stack, artifacts: stack.artifacts.filter((a) => a.id === 'etcd') },
      { version: 1, pins: {} },
      { mirror: 'http://m', suite: 'bookworm', root: await root() },
      deps({ run: async () => ({ exitCode: 2, tail: 'E: unable to locate package etcd-server' }) }),
    ).catch((e: unknown) => e);
    expect((error as KlabError).code).toBe('KLAB_STACK_BUILD_FAILED');
    expect((error as KlabError).message).toBe('the debian stack recipe debs.sh failed (exit 2)');
    expect((error as KlabError).outputTail).toContain('unable to locate package');
  });

  it('says it needs root before touching anything', async () => {
    const error = await buildDebianStack(
      nonBox,
      { version: 1, pins: {} },
      { mirror: 'http://m', suite: 'bookworm', root: await root() },
      deps({
        isRoot: () => false,
        ensureBox: async () => {
          throw new Error('must not build the box');
        },
      }),
    ).catch((e: unknown) => e);
    expect((error as KlabError).code).toBe('KLAB_NEEDS_ROOT');
  });
});
