/**
 * The image store for real: made by the host's own Docker (a private dockerd) from the
 * debian stack's four images, then unpacked into an empty data root, as a VM does, and
 * opened by a second private dockerd of the same version: every image there under its
 * name, with its entrypoint, and each layer whole (docker save reads it back).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { runProcess } from '../../src/adapters/process.js';
import { hostImageStore } from '../../src/app/image-store.js';
import type { KlabEvent } from '../../src/model/events.js';
import { artifactPath } from '../../src/stacks/cache.js';
import { dockerdVersion } from '../../src/stacks/image-store.js';
import { loadStack } from '../../src/stacks/index.js';
import { installProfile } from '../../src/stacks/install.js';
import { compressionArgs } from '../../src/stacks/subset.js';

const stack = loadStack('debian');
const profile = installProfile('debian');
const images = [profile.pauseImage, profile.testAppImage, profile.ingressImage, profile.dnsImage];
const artifactFile = (id: string) => {
  const artifact = stack.artifacts.find((a) => a.id === id);
  if (!artifact) throw new Error(`no artifact ${id}`);
  return artifactPath(artifact);
};

/** Whether the host's Docker bridge is there (the other container tests run on it). */
async function hostBridge(): Promise<boolean> {
  return (await execa('ip', ['link', 'show', 'docker0'], { reject: false })).exitCode === 0;
}

let dir = '';
let dockerd: ReturnType<typeof execa> | undefined;

afterAll(async () => {
  dockerd?.kill('SIGTERM');
  await dockerd?.catch(() => undefined);
  // dockerd may leave its data root bind-mounted onto itself.
  await execa('umount', [path.join(dir, 'data')], { reject: false });
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the image store made on the host', () => {
  it('opens in a fresh dockerd of its version with every image whole', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'klab-store-'));
    const version = dockerdVersion((await execa('dockerd', ['--version'])).stdout);
    if (!version) throw new Error('no dockerd version');
    const events: KlabEvent[] = [];
    const make = hostImageStore(
      artifactFile,
      { emit: (event) => events.push(event) },
      {
        isRoot: () => process.getuid?.() === 0,
        run: runProcess,
        root: path.join(dir, 'stores'),
      },
    );
    const bridgeBefore = await hostBridge();
    const store = await make(images, version);
    expect(events.filter((event) => event.kind === 'notice')).toEqual([]);
    expect(store).toMatchObject({ dockerVersion: version, driver: 'overlay2' });
    if (!store) throw new Error('no store');

    // zstd-compressed: the test tier's host has zstd (scripts/setup-host installs it).
    expect(store.file.endsWith('.tar.zst')).toBe(true);

    // What the VM does: unpack into the data root of a Docker that has no image yet.
    const data = path.join(dir, 'data');
    await mkdir(data);
    await execa('tar', [
      '-C',
      data,
      '--numeric-owner',
      '--xattrs',
      '--xattrs-include=trusted.*',
      ...compressionArgs(store.file),
      '-xpf',
      store.file,
    ]);
    const sock = path.join(dir, 'docker.sock');
    await writeFile(path.join(dir, 'daemon.json'), '{}');
    // Its own network namespace, as the builder's: a dockerd with --bridge none deletes the
    // host's docker0 as it starts.
    dockerd = execa(
      'unshare',
      [
        '--net',
        '--',
        'dockerd',
        '--config-file',
        path.join(dir, 'daemon.json'),
        '--data-root',
        data,
        '--exec-root',
        path.join(dir, 'exec'),
        '--pidfile',
        path.join(dir, 'dockerd.pid'),
        '--host',
        `unix://${sock}`,
        '--storage-driver',
        'overlay2',
        '--bridge',
        'none',
        '--iptables=false',
        '--ip-masq=false',
        '--containerd-namespace',
        'klab-store-test',
        '--containerd-plugins-namespace',
        'klab-store-test-p',
      ],
      { reject: false, all: true },
    );
    const docker = (...args: string[]) =>
      execa('docker', ['--host', `unix://${sock}`, ...args], { reject: false });
    for (let i = 0; i < 120 && (await docker('version')).exitCode !== 0; i += 1) {
      if (dockerd.exitCode !== null) throw new Error(`dockerd exited: ${dockerd.all ?? ''}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    for (const image of images) {
      const inspect = await docker(
        'image',
        'inspect',
        '--format',
        '{{json .Config.Entrypoint}}',
        image.image,
      );
      expect(inspect.exitCode, `${image.image}: ${inspect.stderr}`).toBe(0);
      const entrypoint = image.from === 'docker-archive' ? undefined : image.from.entrypoint;
      if (entrypoint) expect(JSON.parse(inspect.stdout)).toEqual([entrypoint]);
    }
    const saved = await execa('sh', [
      '-c',
      `docker --host unix://${sock} save ${profile.testAppImage.image} | tar -t | grep -c layer.tar`,
    ]);
    expect(Number(saved.stdout.trim())).toBeGreaterThan(0);
    // Neither private dockerd touched the host's Docker bridge (its containers need it).
    expect(await hostBridge()).toBe(bridgeBefore);
  }, 300_000);
});
