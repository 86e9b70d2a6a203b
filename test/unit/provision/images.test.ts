/** The images step asks Docker on a node about every image in one SSH exec. */
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { imagesStep } from '../../../provision/images/index.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const spec = twoVmSpec();

/**
 * A node whose `sh -c` scripts run in a real shell, with a `docker` that knows the images
 * listed (or, lost, a connection that drops before any answer).
 */
async function node(loaded: string[], options: { lost?: boolean } = {}) {
  const bin = await mkdtemp(path.join(os.tmpdir(), 'klab-images-'));
  await writeFile(
    path.join(bin, 'docker'),
    `#!/bin/sh\n# docker image inspect --format . NAME\nfor known in ${loaded.map((n) => `'${n}'`).join(' ')}; do [ "$known" = "$5" ] && exit 0; done\necho "Error: No such image: $5" >&2\nexit 1\n`,
  );
  await chmod(path.join(bin, 'docker'), 0o755);
  const host = new FakeHost('node1', (argv) => {
    if (argv[0] !== 'sh') return undefined;
    if (options.lost) return { exitCode: 255, stderr: 'connection lost' };
    const stdout = execFileSync('sh', ['-c', argv[2] ?? ''], {
      env: { PATH: `${bin}:${process.env.PATH}` },
      encoding: 'utf8',
    });
    return { stdout };
  });
  const ctx = testStepContext(spec, { node1: host });
  const vm = spec.vms.find((entry) => entry.name === 'node1');
  if (!vm) throw new Error('no node1');
  return { host, ctx, vm };
}

describe('the images step', () => {
  const profile = testStepContext(spec, {}).profile;
  const all = () => [
    profile.pauseImage.image,
    profile.testAppImage.image,
    profile.ingressImage.image,
    profile.dnsImage.image,
  ];

  it('names each image Docker lacks, asking once', async () => {
    const [pause, app, ingress, dns] = all();
    const { host, ctx, vm } = await node([pause ?? '', dns ?? '']);
    expect(await imagesStep.problems?.(ctx, vm)).toEqual([
      `image ${app} is not loaded`,
      `image ${ingress} is not loaded`,
    ]);
    expect(host.calls).toHaveLength(1);
    expect(host.calls[0]?.sudo).toBe(true);
  });

  it('passes when every image is there', async () => {
    const { ctx, vm } = await node(all());
    expect(await imagesStep.problems?.(ctx, vm)).toEqual([]);
  });

  it('does not take a lost connection for "every image is there"', async () => {
    const { ctx, vm } = await node(all(), { lost: true });
    expect(await imagesStep.problems?.(ctx, vm)).toEqual([
      'the Docker images on node1 could not be listed',
    ]);
  });
});
