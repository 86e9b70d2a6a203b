/**
 * `klab artifacts build --stack debian`: every artifact of the mirror-only stack, built
 * from a Debian mirror and the Go module proxy, cached by its inputs, pinned in the lock.
 */
import { existsSync } from 'node:fs';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cachePath } from '../model/cache-paths.js';
import { KlabError } from '../model/errors.js';
import { type EventSink, scriptLines, task } from '../model/events.js';
import { sha256, sha256File } from '../model/hash.js';
import { packagePath } from '../model/package-root.js';
import { artifactPath, artifactsRoot, type LockFile, lockKey } from './cache.js';
import { writeImageArchive } from './image-archive.js';
import type { Artifact, Stack } from './manifest.js';

export const FLANNEL_VERSION = 'v0.28.10';
export const TRAEFIK_VERSION = 'v2.11.10';
export const COREDNS_VERSION = 'v1.10.1';

export interface DebianBuildOptions {
  mirror: string;
  suite: string;
  force?: boolean;
  root?: string;
}

export interface DebianBuildDeps {
  sink: EventSink;
  isRoot(): boolean;
  /** Run a recipe script; resolves to the exit code and the output tail. */
  run(argv: string[], onLine: (line: string) => void): Promise<{ exitCode: number; tail: string }>;
  /** Build or reuse klab/debian-12; returns its cached files. */
  ensureBox(): Promise<{ box: string; rootfsTar: string; key: string }>;
}

type BoxFiles = { box: string; rootfsTar: string; key: string };

interface Recipe {
  /** What goes into the cache key besides the recipe files. */
  inputs: string[];
  files: string[];
  build(ctx: { out: string; work: string }): Promise<void>;
}

/**
 * Artifacts whose recipe needs nothing of the box: they build while the box is made
 * (debootstrap waits on the network and the disk; the Kubernetes compile on the CPU, and
 * not on all of it: code generation and each link use one core).
 */
export const BOXLESS_ARTIFACTS: ReadonlySet<string> = new Set([
  'kubernetes',
  'flannel',
  'traefik',
  'coredns',
  'pause-image',
]);

function script(name: string): string {
  return packagePath('builders', 'debian', name);
}

export async function buildDebianStack(
  stack: Stack,
  lock: LockFile,
  options: DebianBuildOptions,
  deps: DebianBuildDeps,
): Promise<{ built: string[]; reused: string[] }> {
  if (!deps.isRoot()) {
    throw new KlabError(
      'KLAB_NEEDS_ROOT',
      'building the debian stack needs root (chroot, apt, loop devices)',
      {
        hint: 'Run it as root: sudo klab artifacts build --stack debian',
      },
    );
  }
  const root = options.root ?? artifactsRoot();
  let made: BoxFiles | undefined;
  const needBox = (): BoxFiles => {
    if (!made) throw new KlabError('KLAB_INTERNAL', 'a recipe that needs the box ran before it');
    return made;
  };
  const runScript = async (argv: string[], update: (text: string) => void) => {
    const result = await deps.run(argv, scriptLines(deps.sink, 'build', update));
    if (result.exitCode !== 0) {
      throw new KlabError(
        'KLAB_STACK_BUILD_FAILED',
        `the debian stack recipe ${path.basename(argv[1] ?? argv[0] ?? '')} failed (exit ${result.exitCode})`,
        {
          command: argv,
          outputTail: result.tail,
          hint:
            `Is ${options.mirror} reachable (and the Go module proxy, for flannel, Traefik and CoreDNS)? ` +
            'The full output is in the log; running the same command again resumes with what is cached.',
        },
      );
    }
  };
  const common = ['--mirror', options.mirror, '--suite', options.suite];

  /** Debian packages plus what the box lacks of their dependencies. */
  const debs = (packages: string[], update: (t: string) => void): Recipe => ({
    inputs: [...common, needBox().key, packages.join(' ')],
    files: ['debs.sh'],
    build: ({ out, work }) =>
      runScript(
        [
          'bash',
          script('debs.sh'),
          '--rootfs-tar',
          needBox().rootfsTar,
          ...common,
          '--work',
          work,
          '--out',
          out,
          ...packages,
        ],
        update,
      ),
  });

  /** A program built from its Go module by one recipe script at a pinned version. */
  const goModule = (name: string, version: string, update: (t: string) => void): Recipe => ({
    inputs: [version],
    files: [name, 'go-module.sh'],
    build: ({ out, work }) =>
      runScript(['bash', script(name), '--version', version, '--work', work, '--out', out], update),
  });

  const recipes: Record<string, (update: (t: string) => void) => Recipe> = {
    box: () => ({
      inputs: [needBox().key],
      files: [],
      build: async ({ out }) => {
        await rm(out, { force: true });
        await link(needBox().box, out);
      },
    }),
    kubernetes: (update) => ({
      inputs: common,
      files: ['kubernetes.sh'],
      build: ({ out, work }) =>
        runScript(
          ['bash', script('kubernetes.sh'), ...common, '--work', work, '--out', out],
          update,
        ),
    }),
    etcd: (update) => debs(['etcd-server', 'etcd-client'], update),
    docker: (update) =>
      debs(['docker.io', 'containerd', 'runc', 'tini', 'apparmor', 'conntrack'], update),
    flannel: (update) => goModule('flannel.sh', FLANNEL_VERSION, update),
    traefik: (update) => goModule('traefik.sh', TRAEFIK_VERSION, update),
    coredns: (update) => goModule('coredns.sh', COREDNS_VERSION, update),
    'pause-image': (update) => ({
      inputs: [],
      files: ['pause.sh', 'pause.c'],
      build: async ({ out, work }) => {
        const rootDir = path.join(work, 'root');
        await rm(rootDir, { recursive: true, force: true });
        await runScript(
          ['bash', script('pause.sh'), '--work', work, '--out-root', rootDir],
          update,
        );
        update('packing the image archive');
        await writeImageArchive({
          rootDir,
          out,
          work,
          repoTag: 'klab/pause:klab-1',
          config: { Entrypoint: ['/pause'] },
          createdBy: 'klab builders/debian/pause.sh',
        });
      },
    }),
    'php-apache-image': (update) => ({
      inputs: [...common, needBox().key],
      files: ['php-apache.sh'],
      build: async ({ out, work }) => {
        const rootDir = path.join(work, 'root');
        await runScript(
          [
            'bash',
            script('php-apache.sh'),
            '--rootfs-tar',
            needBox().rootfsTar,
            ...common,
            '--work',
            work,
            '--out-root',
            rootDir,
          ],
          update,
        );
        update('packing the image archive');
        await writeImageArchive({
          rootDir,
          out,
          work,
          repoTag: 'klab/php-apache:debian-12-slim',
          // No shell in the image: Apache runs directly, with what apache2ctl would set.
          config: {
            Entrypoint: ['/usr/sbin/apache2'],
            Cmd: ['-D', 'FOREGROUND'],
            Env: [
              'PATH=/usr/sbin:/usr/bin',
              'APACHE_RUN_USER=www-data',
              'APACHE_RUN_GROUP=www-data',
              'APACHE_RUN_DIR=/var/run/apache2',
              'APACHE_PID_FILE=/var/run/apache2/apache2.pid',
              'APACHE_LOCK_DIR=/var/lock/apache2',
              'APACHE_LOG_DIR=/var/log/apache2',
              'LANG=C',
            ],
            ExposedPorts: { '80/tcp': {} },
            WorkingDir: '/var/www/html',
            StopSignal: 'SIGWINCH',
          },
          gzip: true,
          createdBy: 'klab builders/debian/php-apache.sh',
        });
        await rm(rootDir, { recursive: true, force: true });
      },
    }),
  };

  const result = { built: [] as string[], reused: [] as string[] };
  const unknown = stack.artifacts.filter((artifact) => !recipes[artifact.id]);
  if (unknown.length > 0) {
    throw new KlabError(
      'KLAB_INTERNAL',
      `no build recipe for ${unknown.map((a) => a.id).join(', ')}`,
    );
  }
  const buildOne = async (artifact: Artifact): Promise<'built' | 'cached'> => {
    const recipeFor = recipes[artifact.id] as (update: (t: string) => void) => Recipe;
    return task(
      deps.sink,
      `${stack.name} stack: ${artifact.id} (${artifact.description})`,
      async (update) => {
        const recipe = recipeFor(update);
        const out = artifactPath(artifact, root);
        // Next to each built file: the inputs it was built from and the SHA-256 it had.
        const recordFile = `${out}.build.json`;
        const inputs = await inputsHash(recipe, artifact);
        const key = lockKey(stack.name, artifact);
        const record = JSON.parse(await readFile(recordFile, 'utf8').catch(() => '{}')) as {
          inputs?: string;
          sha256?: string;
        };
        if (!options.force && existsSync(out) && record.inputs === inputs && record.sha256) {
          if ((await sha256File(out)) === record.sha256) {
            pin(lock, key, record.sha256, inputs, deps.sink, artifact.id);
            return 'cached';
          }
        }
        const work = cachePath('build', artifact.id);
        await mkdir(work, { recursive: true });
        await mkdir(path.dirname(out), { recursive: true });
        await rm(recordFile, { force: true });
        await recipe.build({ out, work });
        const sha = await sha256File(out);
        await writeFile(recordFile, `${JSON.stringify({ inputs, sha256: sha })}\n`);
        pin(lock, key, sha, inputs, deps.sink, artifact.id);
        return 'built';
      },
      {
        describe: (state) => state,
        code: (state) => (state === 'built' ? 'ARTIFACT_BUILT' : 'ARTIFACT_CACHED'),
        subject: artifact.id,
      },
    );
  };

  // Three lanes at once: the box, the Kubernetes compile, and the other boxless artifacts
  // one after another (their module downloads wait on the network while Kubernetes
  // compiles). Every other artifact needs the box.
  const earlyJobs = new Map<string, Promise<'built' | 'cached'>>();
  let lane: Promise<unknown> = Promise.resolve();
  for (const artifact of stack.artifacts.filter((a) => BOXLESS_ARTIFACTS.has(a.id))) {
    if (artifact.id === 'kubernetes') {
      earlyJobs.set(artifact.id, buildOne(artifact));
      continue;
    }
    const job = lane.then(() => buildOne(artifact));
    lane = job.catch(() => undefined);
    earlyJobs.set(artifact.id, job);
  }
  const [boxOutcome, ...earlyOutcomes] = await Promise.allSettled([
    deps.ensureBox(),
    ...earlyJobs.values(),
  ]);
  // Both run to their end before a failure is reported: no recipe is left running.
  for (const outcome of [boxOutcome, ...earlyOutcomes]) {
    if (outcome?.status === 'rejected') throw outcome.reason;
  }
  made = (boxOutcome as PromiseFulfilledResult<BoxFiles>).value;
  for (const artifact of stack.artifacts) {
    const state = await (earlyJobs.get(artifact.id) ?? buildOne(artifact));
    (state === 'built' ? result.built : result.reused).push(artifact.id);
  }
  return result;
}

function pin(
  lock: LockFile,
  key: string,
  sha256: string,
  inputs: string,
  sink: EventSink,
  id: string,
): void {
  const previous = lock.pins[key]?.sha256;
  if (previous && previous !== sha256) {
    sink.emit({
      kind: 'notice',
      code: 'ARTIFACT_REPINNED',
      level: 'warn',
      text: `${id}: rebuilt from changed inputs; klab.lock.json re-pinned (was ${previous.slice(0, 12)}..., now ${sha256.slice(0, 12)}...)`,
    });
  }
  lock.pins[key] = {
    sha256,
    source: `built (inputs ${inputs.slice(0, 12)})`,
    pinnedAt:
      previous === sha256
        ? (lock.pins[key]?.pinnedAt ?? new Date().toISOString())
        : new Date().toISOString(),
  };
}

async function inputsHash(recipe: Recipe, artifact: Artifact): Promise<string> {
  const scripts = await Promise.all(recipe.files.map((file) => readFile(script(file))));
  return sha256(
    JSON.stringify({ id: artifact.id, version: artifact.version, inputs: recipe.inputs }),
    ...scripts,
  );
}
