/**
 * x02 of the tutorial: the images the cluster runs, loaded into Docker on every node from
 * the artifact cache (no registry is ever asked): the pause sandbox, the PHP test app, the
 * ingress controller and the cluster DNS (a lone static binary becomes an image with
 * docker import). Each archive is streamed over SSH into docker load / docker import.
 *
 * A Docker with no image yet, of the host's Docker version, gets them quicker: the host
 * made a store of all of them once (src/app/image-store.ts), which the VM unpacks into
 * its data root while Docker is stopped. Under software emulation that takes a fraction
 * of what loading takes (docker load hashes and unpacks every layer on the emulated CPU).
 * Anything the store did not bring is loaded as above.
 */

import { KlabError } from '../../src/model/errors.js';
import { output } from '../../src/model/events.js';
import { quote } from '../../src/model/shell.js';
import type { ImageStore } from '../../src/stacks/image-store.js';
import type { ImageInstall } from '../../src/stacks/install.js';
import { probeStep } from '../lib/cluster.js';
import { hasProgram } from '../lib/guest.js';
import type { StepContext } from '../lib/step.js';

function images(ctx: StepContext): ImageInstall[] {
  return [
    ctx.profile.pauseImage,
    ctx.profile.testAppImage,
    ctx.profile.ingressImage,
    ctx.profile.dnsImage,
  ];
}

/** Marks a complete answer: a lost connection is not "every image is there". */
const LISTED = 'klab-images-listed';
/** Starts the line that says Docker did not answer (its first error line follows). */
const DOCKER_ERROR = 'klab-docker-error:';

type Listing = { missing: ImageInstall[] } | { dockerError: string };

/**
 * The images Docker on the VM lacks, from one `docker images` in one SSH exec (each docker
 * command costs 1.5-2 s on a software-emulated node, and this runs at every create, reset
 * and lesson check); Docker's own error when it did not answer; undefined when the VM gave
 * no complete answer (a lost connection).
 */
async function listImages(ctx: StepContext, vm: { name: string }): Promise<Listing | undefined> {
  const wanted = images(ctx);
  const names = wanted.map((image) => quote(image.image)).join(' ');
  const script = [
    "if have=$(docker images --format '{{.Repository}}:{{.Tag}}' 2>&1); then",
    `  for image in ${names}; do printf '%s\\n' "$have" | grep -qxF -- "$image" || echo "$image"; done`,
    `  echo ${LISTED}`,
    'else',
    `  echo "${DOCKER_ERROR} $(printf '%s\\n' "$have" | head -n 1)"`,
    'fi',
  ].join('\n');
  const result = await ctx
    .host(vm.name)
    .run(['sh', '-c', script], { sudo: true, allowFailure: true });
  const lines = result.stdout.split('\n').map((line) => line.trim());
  const error = lines.find((line) => line.startsWith(DOCKER_ERROR));
  if (error !== undefined) return { dockerError: error.slice(DOCKER_ERROR.length).trim() };
  if (!lines.includes(LISTED)) return undefined;
  const missing = new Set(lines);
  return { missing: wanted.filter((image) => missing.has(image.image)) };
}

/** The images Docker lacks; undefined when that could not be known. */
async function missingImages(
  ctx: StepContext,
  vm: { name: string },
): Promise<ImageInstall[] | undefined> {
  const listing = await listImages(ctx, vm);
  return listing && 'missing' in listing ? listing.missing : undefined;
}

/** What `docker info` says that decides whether a store may be unpacked. */
export interface DockerFacts {
  version: string;
  driver: string;
  root: string;
  containers: number;
  images: number;
}

/** `docker info --format` line: VERSION DRIVER ROOT CONTAINERS IMAGES (undefined if not that). */
export function parseDockerFacts(line: string): DockerFacts | undefined {
  const match = /^(\S+) (\S+) (\/\S*) (\d+) (\d+)$/.exec(line.trim());
  if (!match) return undefined;
  const [, version = '', driver = '', root = '', containers = '0', images = '0'] = match;
  return { version, driver, root, containers: Number(containers), images: Number(images) };
}

/** Why a store cannot go into this Docker (undefined: it can). */
export function storeRefusal(facts: DockerFacts, store: ImageStore): string | undefined {
  if (facts.version !== store.dockerVersion) {
    return `Docker ${facts.version} there, the store is of ${store.dockerVersion}`;
  }
  if (facts.driver !== store.driver) return `storage driver ${facts.driver}, not ${store.driver}`;
  if (facts.containers > 0 || facts.images > 0) {
    return `Docker there already has ${facts.images} images and ${facts.containers} containers`;
  }
  return undefined;
}

/**
 * Docker stopped, its (empty) image store replaced by the host's, Docker started again;
 * on a failed unpack the half-written store goes and Docker starts empty. Root: $1; how the
 * store is compressed: $2 (zstd or gzip).
 */
export const UNPACK_STORE = [
  'root=$1',
  'if [ "$2" = zstd ]; then set -- -I zstd; else set -- -z; fi',
  'systemctl stop docker.socket 2>/dev/null',
  'systemctl stop docker || exit 1',
  'rm -rf "$root/image/overlay2" "$root/overlay2"',
  'if tar -C "$root" --numeric-owner --xattrs --xattrs-include=\'trusted.*\' "$@" -xpf -; then unpacked=yes',
  'else unpacked=no; rm -rf "$root/image/overlay2" "$root/overlay2"; fi',
  'systemctl start docker || exit 1',
  'echo "klab-store-unpacked: $unpacked"',
].join('\n');

/**
 * Unpacks the host's image store into a Docker that has no image yet, when the host has
 * one for its version; says why not otherwise (to the log). True when it was unpacked.
 */
async function unpackStore(
  ctx: StepContext,
  vm: { name: string },
  wanted: readonly ImageInstall[],
): Promise<boolean> {
  if (!ctx.imageStore) return false;
  const host = ctx.host(vm.name);
  const info = await host.run(
    [
      'docker',
      'info',
      '--format',
      '{{.ServerVersion}} {{.Driver}} {{.DockerRootDir}} {{.Containers}} {{.Images}}',
    ],
    { sudo: true, allowFailure: true },
  );
  const facts = info.exitCode === 0 ? parseDockerFacts(info.stdout) : undefined;
  if (!facts) return false;
  const store = await ctx.imageStore(wanted, facts.version);
  if (!store) return false;
  const compression = store.file.endsWith('.zst') ? 'zstd' : 'gzip';
  let refusal = storeRefusal(facts, store);
  if (!refusal && compression === 'zstd' && !(await hasProgram(host, 'zstd'))) {
    refusal = 'it is zstd-compressed and this VM has no zstd program';
  }
  if (refusal) {
    output(ctx.sink, vm.name, `images: not unpacking the host's store: ${refusal}`);
    return false;
  }
  const unpacked = await host.run(
    ['sh', '-c', UNPACK_STORE, 'klab-unpack', facts.root, compression],
    {
      sudo: true,
      stdinFile: store.file,
      timeoutMs: 10 * 60_000,
    },
  );
  const done = unpacked.stdout.includes('klab-store-unpacked: yes');
  if (done) output(ctx.sink, vm.name, `images: unpacked the host's image store (${compression})`);
  return done;
}

export const imagesStep = probeStep({
  id: 'images',
  title: 'Load the pause, test-app, ingress and cluster DNS images into Docker (offline)',
  on: 'nodes',
  async problems(ctx, vm) {
    const listing = await listImages(ctx, vm);
    if (!listing) return [`the Docker images on ${vm.name} could not be listed`];
    if ('dockerError' in listing) {
      return [
        `Docker on ${vm.name} did not answer \`docker images\` (${listing.dockerError || 'no message'}): is it running? sudo systemctl status docker`,
      ];
    }
    return listing.missing.map((image) => `image ${image.image} is not loaded`);
  },
  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    let missing = await missingImages(ctx, vm);
    const wanted = images(ctx);
    if (missing?.length === wanted.length && (await unpackStore(ctx, vm, wanted))) {
      missing = await missingImages(ctx, vm);
      output(
        ctx.sink,
        vm.name,
        `images: unpacked the host's image store; ${missing?.length ?? 'unknown'} left to load`,
      );
    }
    if (!missing) {
      throw new KlabError('KLAB_STEP_FAILED', `could not list the Docker images on ${vm.name}`, {
        vm: vm.name,
        hint: `Is Docker running there? klab ssh ${vm.name} -- sudo docker images`,
      });
    }
    for (const image of missing) {
      // Streamed once into Docker over SSH, compressed as it is kept: no copy on the VM's
      // disk to write, read back and delete.
      const argv =
        image.from === 'docker-archive'
          ? ['docker', 'load']
          : [
              'docker',
              'import',
              '--change',
              `ENTRYPOINT ["${image.from.entrypoint}"]`,
              '-',
              image.image,
            ];
      await host.run(argv, {
        sudo: true,
        stdinFile: ctx.artifactFile(image.artifact),
        timeoutMs: 10 * 60_000,
      });
    }
  },
  hint: (vm) => `List the images on ${vm.name}: klab ssh ${vm.name} -- sudo docker images`,
});
