/**
 * x01 of the tutorial: the stack's programs on every VM. Archives are copied once (by
 * checksum), unpacked, and their programs installed into /opt/k8s/bin (on PATH); etcd and
 * Docker packages are installed with their services held back, so nothing starts before
 * klab has configured it. A manifest on the VM records what was installed from which file.
 */
import path from 'node:path';
import { KlabError } from '../../src/model/errors.js';
import { GUEST } from '../../src/model/guest-paths.js';
import { sha256File } from '../../src/model/hash.js';
import type { RemoteHost } from '../../src/model/remote.js';
import type { VmPlan } from '../../src/model/spec.js';
import { isEtcdMember, isOn } from '../../src/model/topology.js';
import { probeStep } from '../lib/cluster.js';
import { changedFiles, type ManagedFile, putFiles, remoteHashes } from '../lib/guest.js';
import type { StepContext } from '../lib/step.js';

const MANIFEST = '/opt/k8s/installed.txt';
const PROFILE: ManagedFile = {
  path: '/etc/profile.d/klab-path.sh',
  content: renderProfilePath(),
  mode: 0o644,
};

interface Unit {
  artifact: string;
  install(host: RemoteHost, file: string): Promise<void>;
  /** Programs that must answer --version afterwards. */
  programs: string[];
}

const hashes = new Map<string, Promise<string>>();
function localSha(file: string): Promise<string> {
  let hash = hashes.get(file);
  if (!hash) {
    hash = sha256File(file);
    hashes.set(file, hash);
  }
  return hash;
}

/** Where an artifact is unpacked on the VM before it is installed. */
function stage(artifact: string): string {
  return `${GUEST.stage}/${artifact}`;
}

/** A part that comes as Debian packages (dpkg -i) or, on the tutorial's stack, an archive. */
function packaged(
  artifact: string,
  kind: string,
  fromArchive: (host: RemoteHost, dir: string) => Promise<void>,
): Unit {
  return {
    artifact,
    programs: [],
    async install(host, file) {
      await unpack(host, file, stage(artifact));
      if (kind === 'deb') await installDebs(host, stage(artifact));
      else await fromArchive(host, stage(artifact));
    },
  };
}

/** What this VM gets from the stack, in install order. */
function unitsFor(ctx: StepContext, vm: VmPlan): Unit[] {
  const { profile, spec } = ctx;
  const units: Unit[] = [];
  for (const archive of profile.archives.filter((entry) => isOn(vm, entry.on))) {
    units.push({
      artifact: archive.artifact,
      programs: archive.members
        .map((member) => path.posix.basename(member))
        .filter((name) => !name.endsWith('.sh')),
      async install(host, file) {
        await unpack(host, file, stage(archive.artifact));
        await installPrograms(host, stage(archive.artifact), archive.members, GUEST.bin);
      },
    });
  }
  if (isEtcdMember(spec, vm)) {
    const etcd = profile.etcd;
    units.push(
      packaged(etcd.artifact, etcd.kind, async (host, dir) => {
        await installPrograms(host, dir, etcd.kind === 'archive' ? etcd.members : [], GUEST.bin);
        const user = await host.run(['id', 'etcd'], { allowFailure: true });
        if (user.exitCode !== 0) {
          await host.run(['useradd', '--system', '--home-dir', '/var/lib/etcd', 'etcd'], {
            sudo: true,
          });
        }
      }),
    );
  }
  if (isOn(vm, 'nodes')) {
    const docker = profile.docker;
    units.push(
      packaged(docker.artifact, docker.kind, async (host, dir) => {
        const programs = await filesIn(host, `${dir}/docker`);
        await installPrograms(host, '', programs, '/usr/bin');
      }),
    );
  }
  return units;
}

/** install -m 0755 of members (paths under dir, or absolute when dir is '') into dest. */
async function installPrograms(
  host: RemoteHost,
  dir: string,
  members: readonly string[],
  dest: string,
): Promise<void> {
  const sources = members.map((member) => (dir ? `${dir}/${member}` : member));
  await host.run(['install', '-m', '0755', ...sources, dest], { sudo: true });
}

/** Full paths of the regular files in a directory on the VM. */
async function filesIn(host: RemoteHost, dir: string): Promise<string[]> {
  const listing = await host.run(['find', dir, '-maxdepth', '1', '-type', 'f'], { sudo: true });
  return listing.stdout.split('\n').filter(Boolean).sort();
}

async function unpack(host: RemoteHost, file: string, dir: string): Promise<void> {
  await host.run(['rm', '-rf', dir], { sudo: true });
  await host.run(['mkdir', '-p', dir], { sudo: true });
  await host.run(['tar', '-xf', file, '-C', dir], { sudo: true, timeoutMs: 10 * 60_000 });
}

/**
 * dpkg -i with a policy-rc.d that forbids starting services: the packages' own units
 * (etcd with its default config, docker without flannel's subnet) must not run yet.
 */
async function installDebs(host: RemoteHost, dir: string): Promise<void> {
  await host.writeFile(
    '/usr/sbin/policy-rc.d',
    '#!/bin/sh\n# klab: no service starts during package installation\nexit 101\n',
    {
      sudo: true,
      mode: 0o755,
    },
  );
  try {
    const debs = (await filesIn(host, dir)).filter((file) => file.endsWith('.deb'));
    await host.run(['dpkg', '-i', '--force-confold', ...debs], {
      sudo: true,
      env: { DEBIAN_FRONTEND: 'noninteractive' },
      timeoutMs: 15 * 60_000,
    });
  } finally {
    await host.run(['rm', '-f', '/usr/sbin/policy-rc.d'], { sudo: true });
  }
}

async function manifestLine(ctx: StepContext, unit: Unit): Promise<string> {
  const file = ctx.artifactFile(unit.artifact);
  return `${unit.artifact} ${path.basename(file)} ${await localSha(file)}`;
}

async function expectedManifest(ctx: StepContext, vm: VmPlan): Promise<string> {
  const lines: string[] = [];
  for (const unit of unitsFor(ctx, vm)) lines.push(await manifestLine(ctx, unit));
  return `${lines.join('\n')}\n`;
}

export const binariesStep = probeStep({
  id: 'binaries',
  title: 'Install the stack: Kubernetes programs, flanneld, etcd, Docker',
  async problems(ctx, vm) {
    const host = ctx.host(vm.name);
    const problems = (await changedFiles(host, [PROFILE])).map((f) => `${f.path} differs`);
    const current = await host.run(['cat', MANIFEST], { allowFailure: true });
    if (current.stdout !== (await expectedManifest(ctx, vm))) {
      problems.push(`${MANIFEST} does not list this stack's files`);
      return problems;
    }
    for (const program of unitsFor(ctx, vm).flatMap((unit) => unit.programs)) {
      const link = await host.run(['readlink', `/usr/local/bin/${program}`], {
        allowFailure: true,
      });
      if (link.stdout.trim() !== `${GUEST.bin}/${program}`)
        problems.push(`/usr/local/bin/${program} is not linked`);
    }
    return problems;
  },
  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    await host.run(['mkdir', '-p', GUEST.bin, GUEST.cache, GUEST.stage], { sudo: true });
    // Only what changed: a rebuilt Docker package set does not re-copy Kubernetes.
    const current = await host.run(['cat', MANIFEST], { allowFailure: true });
    const installed = new Set(current.exitCode === 0 ? current.stdout.split('\n') : []);
    for (const unit of unitsFor(ctx, vm)) {
      if (installed.has(await manifestLine(ctx, unit))) continue;
      const local = ctx.artifactFile(unit.artifact);
      const remote = `${GUEST.cache}/${path.basename(local)}`;
      const sha = await localSha(local);
      if ((await remoteHashes(host, [remote])).get(remote) !== sha) {
        await host.uploadFile(local, remote, { sudo: true, mode: 0o644 });
      }
      await unit.install(host, remote);
      // The copy is not needed any more: unpacked and installed.
      await host.run(['rm', '-rf', remote, `${GUEST.stage}/${unit.artifact}`], { sudo: true });
    }
    // Also on the PATH of non-login shells (klab ssh master -- kubectl get nodes).
    const programs = unitsFor(ctx, vm).flatMap((unit) => unit.programs);
    for (const program of programs) {
      await host.run(['ln', '-sfn', `${GUEST.bin}/${program}`, `/usr/local/bin/${program}`], {
        sudo: true,
      });
    }
    await putFiles(host, [PROFILE]);
    // Each program must run on this VM (a wrong architecture or a truncated copy fails here),
    // once, after installing: under TCG every start of a big Go binary costs seconds.
    for (const program of programs) {
      const args = program === 'kubectl' ? ['version', '--client'] : ['--version'];
      const version = await host.run([`${GUEST.bin}/${program}`, ...args], { allowFailure: true });
      if (version.exitCode !== 0) {
        throw new KlabError('KLAB_STEP_FAILED', `${program} does not run on ${vm.name}`, {
          vm: vm.name,
          command: [program, ...args],
          outputTail: `${version.stdout}\n${version.stderr}`.trim(),
          hint: 'Check the artifact with "klab artifacts verify"; re-run "klab create".',
        });
      }
    }
    await host.writeFile(MANIFEST, await expectedManifest(ctx, vm), { sudo: true, mode: 0o644 });
  },
  hint: (vm) =>
    `Re-run "klab create" to retry; look at the VM with: klab ssh ${vm.name} -- ls -l ${GUEST.bin}`,
});

export function renderProfilePath(): string {
  return `# Managed by klab: the lab's Kubernetes programs.\nexport PATH="${GUEST.bin}:$PATH"\n`;
}
