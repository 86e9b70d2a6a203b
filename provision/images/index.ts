/**
 * x02 of the tutorial: the images the cluster runs, loaded into Docker on every node from
 * the artifact cache (no registry is ever asked): the pause sandbox, the PHP test app, the
 * ingress controller and the cluster DNS (a lone static binary becomes an image with
 * docker import). Each archive is streamed over SSH into docker load / docker import.
 */

import { KlabError } from '../../src/model/errors.js';
import { quote } from '../../src/model/shell.js';
import type { ImageInstall } from '../../src/stacks/install.js';
import { probeStep } from '../lib/cluster.js';
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

/**
 * The images Docker on the VM lacks, in one SSH exec (each `sudo docker` over SSH costs 5-9 s
 * on a software-emulated node, and this runs at every create, reset and lesson check), or
 * undefined when the VM gave no complete answer.
 */
async function missingImages(
  ctx: StepContext,
  vm: { name: string },
): Promise<ImageInstall[] | undefined> {
  const wanted = images(ctx);
  const names = wanted.map((image) => quote(image.image)).join(' ');
  const script = `for image in ${names}; do docker image inspect --format . "$image" >/dev/null 2>&1 || echo "$image"; done; echo ${LISTED}`;
  const result = await ctx
    .host(vm.name)
    .run(['sh', '-c', script], { sudo: true, allowFailure: true });
  const lines = result.stdout.split('\n').map((line) => line.trim());
  if (!lines.includes(LISTED)) return undefined;
  const missing = new Set(lines);
  return wanted.filter((image) => missing.has(image.image));
}

export const imagesStep = probeStep({
  id: 'images',
  title: 'Load the pause, test-app, ingress and cluster DNS images into Docker (offline)',
  on: 'nodes',
  async problems(ctx, vm) {
    const missing = await missingImages(ctx, vm);
    if (!missing) return [`the Docker images on ${vm.name} could not be listed`];
    return missing.map((image) => `image ${image.image} is not loaded`);
  },
  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    const missing = await missingImages(ctx, vm);
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
