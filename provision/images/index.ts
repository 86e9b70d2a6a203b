/**
 * x02 of the tutorial: the images the cluster runs, loaded into Docker on every node from
 * the artifact cache (no registry is ever asked): the pause sandbox, the PHP test app and
 * the ingress controller (a lone static binary becomes an image with docker import).
 */
import path from 'node:path';
import { GUEST } from '../../src/model/guest-paths.js';
import type { ImageInstall } from '../../src/stacks/install.js';
import { probeStep } from '../lib/cluster.js';
import type { StepContext } from '../lib/step.js';

function images(ctx: StepContext): ImageInstall[] {
  return [ctx.profile.pauseImage, ctx.profile.testAppImage, ctx.profile.ingressImage];
}

export const imagesStep = probeStep({
  id: 'images',
  title: 'Load the pause, test-app and ingress images into Docker (offline)',
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
    await host.run(['mkdir', '-p', GUEST.cache], { sudo: true });
    for (const image of images(ctx)) {
      const found = await host.run(['docker', 'image', 'inspect', image.image], {
        sudo: true,
        allowFailure: true,
      });
      if (found.exitCode === 0) continue;
      const local = ctx.artifactFile(image.artifact);
      const remote = `${GUEST.cache}/${path.basename(local)}`;
      await host.uploadFile(local, remote, { sudo: true, mode: 0o644 });
      try {
        if (image.from === 'docker-archive') {
          await host.run(['docker', 'load', '-i', remote], { sudo: true, timeoutMs: 10 * 60_000 });
        } else {
          await host.run(
            [
              'docker',
              'import',
              '--change',
              `ENTRYPOINT ["${image.from.entrypoint}"]`,
              remote,
              image.image,
            ],
            { sudo: true, timeoutMs: 10 * 60_000 },
          );
        }
      } finally {
        await host.run(['rm', '-f', remote], { sudo: true });
      }
    }
  },
  hint: (vm) => `List the images on ${vm.name}: klab ssh ${vm.name} -- sudo docker images`,
});
