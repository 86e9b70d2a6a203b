/**
 * x01 of the tutorial: the stack's programs on every VM. Each VM receives only what its
 * roles run, streamed over SSH straight into tar (a per-role archive cut on the host once),
 * and the programs are installed into /opt/k8s/bin (on PATH); etcd and
 * Docker packages are installed with their services held back, so nothing starts before
 * klab has configured it. A manifest on the VM records what was installed from which file.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { KlabError } from '../../src/model/errors.js';
import { output } from '../../src/model/events.js';
import { GUEST } from '../../src/model/guest-paths.js';
import { sha256File } from '../../src/model/hash.js';
import type { RemoteHost } from '../../src/model/remote.js';
import { formatBytes } from '../../src/model/snapshots.js';
import type { VmPlan } from '../../src/model/spec.js';
import { isEtcdMember, isOn } from '../../src/model/topology.js';
import { compressionArgs, type SubsetCompression, subsetArchive } from '../../src/stacks/subset.js';
import { probeStep } from '../lib/cluster.js';
import { changedFiles, hasProgram, type ManagedFile, putFiles } from '../lib/guest.js';
import type { Step, StepContext } from '../lib/step.js';

const MANIFEST = '/opt/k8s/installed.txt';
const PROFILE: ManagedFile = {
  path: '/etc/profile.d/klab-path.sh',
  content: renderProfilePath(),
  mode: 0o644,
};

interface Unit {
  artifact: string;
  /** What is streamed to the VM: a subset archive (compressed as given) or the artifact itself. */
  source(ctx: StepContext, compression: SubsetCompression): Promise<string>;
  install(host: RemoteHost, source: string): Promise<void>;
  /** Programs installed into /opt/k8s/bin (checked and linked onto PATH afterwards). */
  programs: string[];
  /** What the manifest records besides the artifact: the members taken, if a subset. */
  members: string[];
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
    members: [],
    source: async (ctx) => ctx.artifactFile(artifact),
    async install(host, source) {
      await unpack(host, source, stage(artifact));
      if (kind === 'deb') await installDebs(host, stage(artifact));
      else await fromArchive(host, stage(artifact));
    },
  };
}

/**
 * What this VM gets from the stack, in install order: from each archive only the members
 * its roles run (the union of the profile's entries placed on it).
 */
function unitsFor(ctx: StepContext, vm: VmPlan): Unit[] {
  const { profile, spec } = ctx;
  const units: Unit[] = [];
  const membersOf = new Map<string, string[]>();
  for (const archive of profile.archives.filter((entry) => isOn(vm, entry.on))) {
    const members = membersOf.get(archive.artifact) ?? [];
    for (const member of archive.members) if (!members.includes(member)) members.push(member);
    membersOf.set(archive.artifact, members);
  }
  for (const [artifact, members] of membersOf) {
    units.push({
      artifact,
      members,
      programs: members
        .map((member) => path.posix.basename(member))
        .filter((name) => !name.endsWith('.sh')),
      async source(ctx, compression) {
        const file = ctx.artifactFile(artifact);
        return subsetArchive(file, await localSha(file), members, { compression });
      },
      async install(host, source) {
        await unpack(host, source, stage(artifact));
        await installPrograms(host, stage(artifact), members, GUEST.bin);
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

/**
 * Moves members (paths under dir, or absolute when dir is '') into dest as root-owned
 * programs (mode 0755). A rename, not a copy: the stage is on the same filesystem, and
 * copying Kubernetes' programs again cost seconds of emulated memcpy per VM. A program
 * that is running keeps its old file until it restarts.
 */
async function installPrograms(
  host: RemoteHost,
  dir: string,
  members: readonly string[],
  dest: string,
): Promise<void> {
  if (members.length === 0) return;
  const sources = members.map((member) => (dir ? `${dir}/${member}` : member));
  await host.run(
    [
      'sh',
      '-c',
      'dest=$1; shift; chown 0:0 "$@" && chmod 0755 "$@" && mv -f "$@" "$dest"/',
      'sh',
      dest,
      ...sources,
    ],
    { sudo: true },
  );
}

/** Full paths of the regular files in a directory on the VM. */
async function filesIn(host: RemoteHost, dir: string): Promise<string[]> {
  const listing = await host.run(['find', dir, '-maxdepth', '1', '-type', 'f'], { sudo: true });
  return listing.stdout.split('\n').filter(Boolean).sort();
}

/**
 * Streams a local archive over SSH into tar on the VM (one pass, compressed as it is kept;
 * gzip's or zstd's checksum and tar catch a damaged copy), unpacked into dir.
 */
async function unpack(host: RemoteHost, source: string, dir: string): Promise<void> {
  await host.run(['rm', '-rf', dir], { sudo: true });
  await host.run(['mkdir', '-p', dir], { sudo: true });
  await host.run(['tar', ...compressionArgs(source), '-xf', '-', '-C', dir], {
    sudo: true,
    stdinFile: source,
    timeoutMs: 15 * 60_000,
  });
}

/**
 * How the programs travel: zstd when the VM has it (klab's box has; under software
 * emulation it unpacks Kubernetes' programs several times faster than gzip), gzip otherwise
 * (a box without zstd, such as Ubuntu 18.04's; or a host without it: see subsetArchive).
 */
async function subsetCompression(host: RemoteHost): Promise<SubsetCompression> {
  return (await hasProgram(host, 'zstd')) ? 'zstd' : 'gzip';
}

/**
 * dpkg -i with a policy-rc.d that forbids starting services: the packages' own units
 * (etcd with its default config, docker without flannel's subnet) must not run yet.
 * unsafe-io: no fsync per file (a crash mid-install is redone by re-running the step).
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
    await host.run(['dpkg', '-i', '--force-confold', '--force-unsafe-io', ...debs], {
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
  const taken = unit.members.map((member) => path.posix.basename(member)).join(',');
  return `${unit.artifact} ${path.basename(file)} ${await localSha(file)}${taken ? ` ${taken}` : ''}`;
}

async function expectedManifest(ctx: StepContext, vm: VmPlan): Promise<string> {
  const lines: string[] = [];
  for (const unit of unitsFor(ctx, vm)) lines.push(await manifestLine(ctx, unit));
  return `${lines.join('\n')}\n`;
}

/**
 * The installed programs are 64-bit x86 ELF files (a wrong architecture or an empty file
 * fails here). Starting each one under software emulation costs seconds, so only kubectl,
 * the one learners run most, is started.
 */
export function elfProblems(listing: string): string[] {
  const problems: string[] = [];
  for (const line of listing.split('\n').filter((l) => l.trim())) {
    const [file, ...bytes] = line.trim().split(/\s+/);
    const ok =
      bytes.slice(0, 4).join(' ') === '7f 45 4c 46' && bytes[4] === '02' && bytes[18] === '3e';
    if (!ok) problems.push(`${file} is not a 64-bit x86 program`);
  }
  return problems;
}

const ELF_HEADS =
  'for f in "$@"; do printf "%s " "$f"; od -An -tx1 -N20 "$f" | tr -d "\\n"; echo; done';

/** The programs a VM should have from the packaged parts: etcd's, Docker's, found on PATH. */
function packagedPrograms(ctx: StepContext, vm: VmPlan): string[] {
  const programs: string[] = [];
  if (isEtcdMember(ctx.spec, vm)) programs.push('etcd', 'etcdctl');
  if (isOn(vm, 'nodes')) {
    // Docker 18.03's static archive names its containerd and runc after itself.
    programs.push(
      ...(ctx.profile.docker.kind === 'deb'
        ? ['docker', 'dockerd', 'containerd', 'runc']
        : ['docker', 'dockerd', 'docker-containerd', 'docker-runc']),
    );
  }
  return programs;
}

const PROGRAM_HEADS =
  'for f in "$@"; do if [ -f "$f" ] && [ -x "$f" ]; then printf "%s " "$f"; od -An -tx1 -N20 "$f" | tr -d "\\n"; echo; else echo "MISSING $f"; fi; done';

/**
 * What is wrong with the installed programs, however they got there (a lesson done by
 * hand): each program this VM's roles run is in /opt/k8s/bin, executable, a 64-bit x86
 * program, and found on the PATH of a non-login shell (`klab ssh VM -- kubectl ...`); etcd's
 * and Docker's programs are on that PATH where they run. Nothing is started.
 */
export async function binariesOutcome(ctx: StepContext, vm: VmPlan): Promise<string[]> {
  const host = ctx.host(vm.name);
  const programs = unitsFor(ctx, vm).flatMap((unit) => unit.programs);
  const files = programs.map((program) => `${GUEST.bin}/${program}`);
  const problems: string[] = [];
  if (files.length > 0) {
    const heads = await host.run(['sh', '-c', PROGRAM_HEADS, 'sh', ...files], {
      allowFailure: true,
    });
    const present: string[] = [];
    for (const line of heads.stdout.split('\n').filter((entry) => entry.trim())) {
      if (line.startsWith('MISSING ')) {
        problems.push(`${line.slice('MISSING '.length)} is missing (or not executable)`);
      } else present.push(line);
    }
    problems.push(...elfProblems(present.join('\n')));
  }
  // klab's programs must be on the non-login PATH; etcd and Docker may also sit in
  // /opt/k8s/bin (the pinned stack's etcd archive), where their units call them.
  const found = await host.run(
    [
      'env',
      `PATH=${NON_LOGIN_PATH}`,
      'sh',
      '-c',
      `for p in "$@"; do [ "$p" = -- ] && { PATH="$PATH:${GUEST.bin}"; continue; }; command -v "$p" >/dev/null || echo "$p"; done`,
      'sh',
      ...programs,
      '--',
      ...packagedPrograms(ctx, vm),
    ],
    { allowFailure: true },
  );
  for (const program of found.stdout.split('\n').filter((entry) => entry.trim())) {
    problems.push(
      programs.includes(program)
        ? `${program} is not on the PATH of a non-login shell (${NON_LOGIN_PATH}): link it into /usr/local/bin`
        : `${program} is not installed (not on ${NON_LOGIN_PATH})`,
    );
  }
  return problems;
}

/** The PATH sshd gives a command run without a login shell (Debian's default). */
const NON_LOGIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const binariesProbeStep = probeStep({
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
    await host.run(['mkdir', '-p', GUEST.bin, GUEST.stage], { sudo: true });
    // Only what changed: a rebuilt Docker package set does not re-send Kubernetes.
    const current = await host.run(['cat', MANIFEST], { allowFailure: true });
    const installed = new Set(current.exitCode === 0 ? current.stdout.split('\n') : []);
    const units = unitsFor(ctx, vm);
    const compression = await subsetCompression(host);
    for (const unit of units) {
      if (installed.has(await manifestLine(ctx, unit))) continue;
      const source = await unit.source(ctx, compression);
      output(
        ctx.sink,
        vm.name,
        `binaries: ${unit.artifact}: ${path.basename(source)}, ${formatBytes((await stat(source)).size)}${unit.members.length > 0 ? ` (${unit.programs.join(', ')})` : ''}`,
      );
      await unit.install(host, source);
      await host.run(['rm', '-rf', stage(unit.artifact)], { sudo: true });
    }
    // Also on the PATH of non-login shells (klab ssh master -- kubectl get nodes).
    const programs = units.flatMap((unit) => unit.programs);
    const files = programs.map((program) => `${GUEST.bin}/${program}`);
    if (programs.length > 0) {
      await host.run(
        [
          'sh',
          '-c',
          'for f in "$@"; do ln -sfn "$f" /usr/local/bin/"$(basename "$f")"; done',
          'sh',
          ...files,
        ],
        { sudo: true },
      );
      const heads = await host.run(['sh', '-c', ELF_HEADS, 'sh', ...files], { sudo: true });
      const problems = elfProblems(heads.stdout);
      if (programs.includes('kubectl')) {
        const version = await host.run([`${GUEST.bin}/kubectl`, 'version', '--client'], {
          allowFailure: true,
        });
        if (version.exitCode !== 0) problems.push(`kubectl does not run: ${version.stderr.trim()}`);
      }
      if (problems.length > 0) {
        throw new KlabError('KLAB_STEP_FAILED', `the installed programs on ${vm.name} are broken`, {
          vm: vm.name,
          details: problems,
          hint: 'Check the artifacts with "klab artifacts verify"; re-run "klab create".',
        });
      }
    }
    await putFiles(host, [PROFILE]);
    await host.writeFile(MANIFEST, await expectedManifest(ctx, vm), { sudo: true, mode: 0o644 });
  },
  hint: (vm) =>
    `Re-run "klab create" to retry; look at the VM with: klab ssh ${vm.name} -- ls -l ${GUEST.bin}`,
});

export const binariesStep: Step = { ...binariesProbeStep, outcome: binariesOutcome };

export function renderProfilePath(): string {
  return `# Managed by klab: the lab's Kubernetes programs.\nexport PATH="${GUEST.bin}:$PATH"\n`;
}
