/**
 * Vagrant boxes: the pinned list, local builds with debootstrap (cached by their inputs),
 * and the fallback when the default box cannot be downloaded.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cachePath, readJson, writeJson } from '../model/cache-paths.js';
import { KlabError } from '../model/errors.js';
import { type EventSink, scriptLines, task } from '../model/events.js';
import { sha256 } from '../model/hash.js';
import { packagePath } from '../model/package-root.js';
import type { StackName } from '../model/spec.js';

export interface LocalBoxRecipe {
  name: string;
  suite: string;
  mirror: string;
  description: string;
}

/** Boxes klab can build itself. The first is the fallback when no box can be downloaded. */
export const LOCAL_BOXES: readonly LocalBoxRecipe[] = [
  {
    name: 'klab/debian-12',
    suite: 'bookworm',
    mirror: 'http://deb.debian.org/debian',
    description: 'Debian 12 (bookworm), cgroup v1, built locally with debootstrap',
  },
  {
    name: 'klab/ubuntu-18.04',
    suite: 'bionic',
    mirror: 'http://archive.ubuntu.com/ubuntu',
    description: "Ubuntu 18.04 (bionic, the tutorial's OS), built locally with debootstrap",
  },
];

export const FALLBACK_BOX = 'klab/debian-12';
export const FALLBACK_STACK: StackName = 'debian';

export function localRecipe(name: string): LocalBoxRecipe | undefined {
  return LOCAL_BOXES.find((box) => box.name === name);
}

export function recipeForSuite(suite: string, mirror?: string, name?: string): LocalBoxRecipe {
  const known = LOCAL_BOXES.find((box) => box.suite === suite);
  return {
    name: name ?? known?.name ?? `klab/${suite}`,
    suite,
    mirror: mirror ?? known?.mirror ?? 'http://deb.debian.org/debian',
    description: known?.description ?? `${suite}, built locally with debootstrap`,
  };
}

export interface BoxBuildPaths {
  key: string;
  dir: string;
  rootfsTar: string;
  box: string;
  kernel: string;
}

/** The cache key covers everything that changes the result: script, suite, mirror, key. */
export async function boxBuildPaths(recipe: LocalBoxRecipe): Promise<BoxBuildPaths> {
  const key = sha256(
    await readFile(packagePath('boxes', 'build-box.sh')),
    await readFile(packagePath('boxes', 'vagrant-insecure.pub')),
    `${recipe.suite}\n${recipe.mirror}\n`,
  ).slice(0, 12);
  const dir = cachePath('boxes', `${recipe.suite}-${key}`);
  return {
    key,
    dir,
    rootfsTar: path.join(dir, 'rootfs.tar'),
    box: path.join(dir, 'box.box'),
    kernel: path.join(dir, 'vmlinuz'),
  };
}

export interface BoxDeps {
  sink: EventSink;
  /** Runs a local program, streaming its lines; resolves to the exit code and output tail. */
  runBuildScript(
    argv: string[],
    onLine: (line: string) => void,
  ): Promise<{ exitCode: number; tail: string }>;
  isRoot(): boolean;
  missingTools(tools: readonly string[]): Promise<string[]>;
  installedBoxes(): Promise<string[]>;
  addBox(name: string, file: string): Promise<{ ok: boolean; tail: string }>;
}

const BUILD_TOOLS = [
  'debootstrap',
  'sfdisk',
  'losetup',
  'mkfs.ext4',
  'extlinux',
  'qemu-img',
  'tar',
];

/**
 * Which build of each local box Vagrant has: its cache key, and the box version it was
 * added as (absent for a registration of an older klab, added as version 0).
 */
type Registry = Record<string, string | { key: string; version: string }>;

const registryFile = () => cachePath('boxes', 'registered.json');

function registered(registry: Registry, name: string): { key?: string; version?: string } {
  const entry = registry[name];
  return typeof entry === 'string' ? { key: entry } : (entry ?? {});
}

/**
 * The box version a build is added to Vagrant as: new with every registration (the time),
 * so that vagrant-libvirt, which names its copy of a box in the storage pool after the box's
 * name and version and never replaces one it has, uploads a rebuilt box instead of booting
 * new VMs from the image of the build before. VMs made from that one keep it.
 */
export function boxVersionAt(nowMs: number): string {
  return `1.${Math.floor(nowMs / 1000)}.0`;
}

/**
 * Vagrant box metadata for one local build: `vagrant box add` of this file adds the box as
 * this version (a plain file would be added as version 0).
 */
export function boxMetadata(name: string, version: string, boxFile: string): string {
  return `${JSON.stringify(
    {
      name,
      versions: [
        { version, providers: [{ name: 'libvirt', url: `file://${path.resolve(boxFile)}` }] },
      ],
    },
    null,
    2,
  )}\n`;
}

/**
 * The version of `name` Vagrant should boot (the build klab registered last), for the
 * Vagrantfile's box_version; undefined for other boxes and older registrations.
 */
export async function registeredBoxVersion(name: string): Promise<string | undefined> {
  return registered((await readJson<Registry>(registryFile())) ?? {}, name).version;
}

/** Build (or reuse) a local box and make sure Vagrant has exactly that build registered. */
export async function ensureLocalBox(
  recipe: LocalBoxRecipe,
  deps: BoxDeps,
  options: { force?: boolean } = {},
): Promise<BoxBuildPaths> {
  const paths = await boxBuildPaths(recipe);
  const registry = (await readJson<Registry>(registryFile())) ?? {};
  const built = existsSync(paths.box) && !options.force;

  if (!built) {
    if (!deps.isRoot()) {
      throw new KlabError('KLAB_NEEDS_ROOT', `building the box ${recipe.name} needs root`, {
        hint: `Run it as root: sudo klab box build --suite ${recipe.suite}`,
      });
    }
    const missing = await deps.missingTools(BUILD_TOOLS);
    if (missing.length > 0) {
      throw new KlabError('KLAB_TOOL_MISSING', `building a box needs: ${missing.join(', ')}`, {
        hint: 'Install them: sudo apt-get install debootstrap fdisk e2fsprogs extlinux syslinux-common qemu-utils',
      });
    }
    await task(
      deps.sink,
      `Build box ${recipe.name} from ${recipe.mirror} (${recipe.suite})`,
      async (update) => {
        const argv = [
          'bash',
          packagePath('boxes', 'build-box.sh'),
          '--suite',
          recipe.suite,
          '--mirror',
          recipe.mirror,
          '--rootfs-tar',
          paths.rootfsTar,
          '--box',
          paths.box,
          '--kernel-out',
          paths.kernel,
          '--pubkey',
          packagePath('boxes', 'vagrant-insecure.pub'),
        ];
        const result = await deps.runBuildScript(argv, scriptLines(deps.sink, 'box', update));
        if (result.exitCode !== 0) {
          throw new KlabError(
            'KLAB_BOX_BUILD_FAILED',
            `building ${recipe.name} failed (exit ${result.exitCode})`,
            {
              command: argv,
              outputTail: result.tail,
              hint: `Is ${recipe.mirror} reachable? Pass another with --mirror. The full output is in the log.`,
            },
          );
        }
      },
      { code: () => 'BOX_BUILT', subject: recipe.name },
    );
  }

  const installed = await deps.installedBoxes();
  const now = registered(registry, recipe.name);
  if (
    !installed.includes(recipe.name) ||
    now.key !== paths.key ||
    now.version === undefined ||
    !built
  ) {
    const version = boxVersionAt(Date.now());
    await task(
      deps.sink,
      `Register box ${recipe.name} with Vagrant (version ${version})`,
      async () => {
        const metadata = path.join(paths.dir, 'metadata.json');
        await writeFile(metadata, boxMetadata(recipe.name, version, paths.box));
        const added = await deps.addBox(recipe.name, metadata);
        if (!added.ok) {
          throw new KlabError('KLAB_VAGRANT_FAILED', `vagrant box add ${recipe.name} failed`, {
            outputTail: added.tail,
            hint: `The box was built (${paths.box}); fix the cause above and run the command again to register it.`,
          });
        }
      },
    );
    registry[recipe.name] = { key: paths.key, version };
    await writeJson(registryFile(), registry);
  }
  return paths;
}

/** klab box list: the boxes klab can build, and whether the cache holds a build. */
export async function listBoxes(): Promise<
  { name: string; suite: string; mirror: string; built: boolean }[]
> {
  return Promise.all(
    LOCAL_BOXES.map(async (box) => ({
      name: box.name,
      suite: box.suite,
      mirror: box.mirror,
      built: existsSync((await boxBuildPaths(box)).box),
    })),
  );
}

/** klab box build: a box from a suite and mirror (or a known name), built or reused. */
export async function buildBox(
  deps: BoxDeps,
  options: { suite?: string; mirror?: string; name?: string; force?: boolean },
): Promise<{ recipe: LocalBoxRecipe; paths: BoxBuildPaths }> {
  const named = options.name ? localRecipe(options.name) : undefined;
  const recipe = recipeForSuite(
    options.suite ?? named?.suite ?? 'bookworm',
    options.mirror,
    options.name,
  );
  const paths = await ensureLocalBox(recipe, deps, { force: Boolean(options.force) });
  return { recipe, paths };
}
