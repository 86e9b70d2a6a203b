/**
 * x02 of the tutorial: the images the cluster runs, loaded into Docker on every node from
 * the artifact cache (no registry is ever asked): the pause sandbox, the PHP test app, the
 * ingress controller and the cluster DNS (a lone static binary becomes an image with
 * docker import). Each archive is streamed over SSH into docker load / docker import.
 */
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

export const imagesStep = probeStep({
  id: 'images',
  title: 'Load the pause, test-app, ingress and cluster DNS images into Docker (offline)',
  on: 'nodes',
  async problems(ctx, vm) {
    const host = ctx.host(vm.name);
    const problems: string[] = [];
    for (const image of images(ctx)) {
      const found = await host.run(
        ['docker', 'image', 'inspect', '--format', '{{.Id}}', image.image],
        {
          sudo: true,
          allowFailure: true,
        },
      );
      if (found.exitCode !== 0) problems.push(`image ${image.image} is not loaded`);
    }
    return problems;
  },
  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    for (const image of images(ctx)) {
      const found = await host.run(['docker', 'image', 'inspect', image.image], {
        sudo: true,
        allowFailure: true,
      });
      if (found.exitCode === 0) continue;
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
