/**
 * The lab's stack on the host side: fetching or building its artifacts (also for
 * `klab create`), listing and verifying the cache, offline bundles. Commands call these.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { runProcess } from '../adapters/process.js';
import { Vagrant } from '../adapters/vagrant.js';
import { isKlabError, KlabError, tail } from '../model/errors.js';
import { type EventSink, task } from '../model/events.js';
import { labPaths } from '../model/lab-paths.js';
import type { LabSpec, StackName } from '../model/spec.js';
import { loadSpec } from '../model/spec-file.js';
import { buildDebianStack, type DebianBuildDeps } from '../stacks/build-debian.js';
import { type LockFile, mirrorConfig, readLock, writeLock } from '../stacks/cache.js';
import { loadStack } from '../stacks/index.js';
import type { Stack } from '../stacks/manifest.js';
import {
  artifactStatuses,
  exportBundle,
  importBundle,
  pullStack,
  verifyCache,
} from '../stacks/ops.js';
import { boxBuildPaths, ensureLocalBox, FALLBACK_BOX, localRecipe, recipeForSuite } from './box.js';
import { boxDeps } from './box-deps.js';
import type { Lab } from './lab.js';

/** What the debian stack builder needs from the outside world. */
export function debianBuildDeps(sink: EventSink, dir: string, mirror: string): DebianBuildDeps {
  const vagrant = new Vagrant(dir, {
    onLine: (line) => sink.emit({ kind: 'output', code: 'OUTPUT', source: 'vagrant', line }),
  });
  return {
    sink,
    isRoot: () => process.getuid?.() === 0,
    run: async (argv, onLine) => {
      const result = await runProcess(argv, { onLine: (line) => onLine(line) });
      return { exitCode: result.exitCode, tail: tail(`${result.stdout}\n${result.stderr}`) };
    },
    ensureBox: async () => {
      const recipe = recipeForSuite('bookworm', mirror, FALLBACK_BOX);
      const built = await ensureLocalBox(recipe, boxDeps(sink, vagrant));
      return { box: built.box, rootfsTar: built.rootfsTar, key: built.key };
    },
  };
}

const DEBIAN_MIRROR = 'http://deb.debian.org/debian';

/**
 * Fetch (v1.11.1) or build (debian) every artifact of the lab's stack into the cache.
 * When the pinned stack's sources cannot be reached and the user did not insist on it,
 * fall back to the mirror-only stack, and say so.
 */
export interface StackOps {
  pull(stack: string): Promise<void>;
  buildDebian(): Promise<void>;
}

export async function ensureStack(
  lab: Lab,
  stackName: StackName,
  ops?: StackOps,
): Promise<StackName> {
  const lockFile = path.join(lab.paths.dir, 'klab.lock.json');
  const lock = await readLock(lockFile);
  const real: StackOps = {
    pull: async (name) => {
      await pullStack(loadStack(name), lock, mirrorConfig(lab.spec), lab.sink);
    },
    buildDebian: async () => {
      await buildDebianStack(
        loadStack('debian'),
        lock,
        { mirror: DEBIAN_MIRROR, suite: 'bookworm' },
        debianBuildDeps(lab.sink, lab.paths.dir, DEBIAN_MIRROR),
      );
    },
  };
  const { pull, buildDebian } = ops ?? real;
  try {
    if (stackName === 'debian') {
      await buildDebian();
      return 'debian';
    }
    try {
      await pull(stackName);
      return stackName;
    } catch (error) {
      const unreachable = isKlabError(error) && error.code === 'KLAB_ARTIFACT_UNAVAILABLE';
      if (lab.spec.insisted.stack || !unreachable) throw error;
      const message =
        `The ${stackName} stack's downloads cannot be reached from this host (no mirror or bundle has them), ` +
        'so klab falls back to the mirror-only "debian" stack (Kubernetes 1.20 built from Debian sources). ' +
        'Set "stack:" and "mirrors:" in klab.yaml, or import a bundle, to choose yourself.';
      lab.sink.emit({ kind: 'notice', code: 'FALLBACK_STACK', level: 'warn', text: message });
      lab.state.fallbacks = [...(lab.state.fallbacks ?? []), message];
      await buildDebian();
      return 'debian';
    }
  } finally {
    if (!ops) await writeLock(lockFile, lock);
  }
}

/** A lab's stack, its lock file and the lab spec, for the artifacts commands. */
export interface StackContext {
  dir: string;
  spec: LabSpec;
  stack: Stack;
  lock: LockFile;
  lockFile: string;
  sink: EventSink;
}

export async function openStack(
  dir: string,
  stackName: string | undefined,
  sink: EventSink,
): Promise<StackContext> {
  const paths = labPaths(dir);
  const spec = await loadSpec(paths.dir);
  const lockFile = path.join(paths.dir, 'klab.lock.json');
  return {
    dir: paths.dir,
    spec,
    stack: loadStack(stackName ?? spec.stack),
    lock: await readLock(lockFile),
    lockFile,
    sink,
  };
}

/** Rows for `klab artifacts list`. */
export interface ArtifactItem {
  id: string;
  version: string;
  source: string;
  /** official (in the manifest), pinned (klab.lock.json), or pinned on first fetch/build. */
  checksum: 'official' | 'pinned' | 'on-first-build' | 'on-first-download';
  cached: boolean;
  verified: boolean;
}

export async function artifactList(ctx: StackContext): Promise<ArtifactItem[]> {
  return (await artifactStatuses(ctx.stack, ctx.lock)).map((s) => ({
    id: s.artifact.id,
    version: s.artifact.version,
    source: s.source,
    checksum:
      s.checksum === 'official' || s.checksum === 'pinned'
        ? s.checksum
        : s.artifact.source.type === 'build'
          ? 'on-first-build'
          : 'on-first-download',
    cached: s.cached,
    verified: s.verified,
  }));
}

export async function pullArtifacts(ctx: StackContext) {
  try {
    return await pullStack(ctx.stack, ctx.lock, mirrorConfig(ctx.spec), ctx.sink);
  } finally {
    await writeLock(ctx.lockFile, ctx.lock);
  }
}

export async function buildArtifacts(
  ctx: StackContext,
  options: { mirror: string; force: boolean },
) {
  if (ctx.stack.name !== 'debian') {
    throw new KlabError('KLAB_USAGE', `the ${ctx.stack.name} stack is downloaded, not built`, {
      hint: 'Use "klab artifacts pull" for it, or build the mirror-only stack: klab artifacts build --stack debian',
    });
  }
  // The lab directory may not exist yet (klab artifacts build --dir NEW before klab
  // create): Vagrant runs in it when the box is registered.
  await mkdir(ctx.dir, { recursive: true });
  try {
    return await buildDebianStack(
      ctx.stack,
      ctx.lock,
      { mirror: options.mirror, suite: 'bookworm', force: options.force },
      debianBuildDeps(ctx.sink, ctx.dir, options.mirror),
    );
  } finally {
    await writeLock(ctx.lockFile, ctx.lock);
  }
}

/** Re-hash the cache; files that no longer match were deleted, which is an error to report. */
export async function verifyArtifacts(ctx: StackContext) {
  const rows = await verifyCache(ctx.stack, ctx.lock);
  const deleted = rows.filter((r) => r.state === 'deleted');
  return { rows, deleted };
}

/** The bundle carries the lab's box too when klab built it here. */
export async function exportArtifacts(ctx: StackContext, file: string) {
  const recipe =
    localRecipe(ctx.spec.box) ??
    (ctx.stack.name === 'debian' ? localRecipe(FALLBACK_BOX) : undefined);
  const boxFile = recipe ? (await boxBuildPaths(recipe)).box : undefined;
  const box =
    recipe && boxFile && existsSync(boxFile) ? { name: recipe.name, file: boxFile } : undefined;
  return task(ctx.sink, `Write the offline bundle ${file}`, () =>
    exportBundle(ctx.stack, ctx.lock, file, box ? { box } : {}),
  );
}

export interface ImportDeps {
  /** Register a box with Vagrant. */
  addBox(name: string, file: string): Promise<{ ok: boolean; tail: string }>;
  stackFor?(name: string): Stack;
  root?: string;
}

export function vagrantImportDeps(dir: string): ImportDeps {
  const vagrant = new Vagrant(dir);
  return {
    async addBox(name, file) {
      const result = await vagrant.boxAdd(name, file, 30 * 60_000);
      return { ok: result.exitCode === 0, tail: tail(`${result.stdout}\n${result.stderr}`) };
    },
  };
}

/**
 * Import a bundle into the cache, register its box with Vagrant, and put a klab-built box
 * where `klab create` looks for it, so a host without network never tries to rebuild it.
 */
export async function importArtifacts(ctx: StackContext, file: string, deps: ImportDeps) {
  const result = await task(ctx.sink, `Import the offline bundle ${file}`, () =>
    importBundle(deps.stackFor ?? loadStack, ctx.lock, file, deps.root ? { root: deps.root } : {}),
  );
  try {
    if (result.boxFile && result.boxName) {
      const added = await deps.addBox(result.boxName, result.boxFile);
      if (!added.ok) {
        throw new KlabError('KLAB_VAGRANT_FAILED', `vagrant box add ${result.boxName} failed`, {
          outputTail: added.tail,
          hint: 'The artifacts were imported; fix the cause shown above and import the bundle again for the box.',
        });
      }
      const recipe = localRecipe(result.boxName);
      if (recipe) {
        const target = (await boxBuildPaths(recipe)).box;
        await mkdir(path.dirname(target), { recursive: true });
        await copyFile(result.boxFile, target);
      }
    }
  } finally {
    await rm(result.extracted, { recursive: true, force: true });
    await writeLock(ctx.lockFile, ctx.lock);
  }
  return result;
}
