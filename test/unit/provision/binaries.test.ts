import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binariesStep, elfProblems } from '../../../provision/binaries/index.js';
import { controlPlaneStep } from '../../../provision/control-plane/index.js';
import { flannelStep } from '../../../provision/flannel/index.js';
import { kubeProxyStep } from '../../../provision/kube-proxy/index.js';
import { kubeletStep } from '../../../provision/kubelet/index.js';
import type { Step } from '../../../provision/lib/step.js';
import { STACKS } from '../../../src/model/spec.js';
import { isOn } from '../../../src/model/topology.js';
import { installProfile } from '../../../src/stacks/install.js';
import { compressionArgs } from '../../../src/stacks/subset.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { defaultSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const ELF_X86_64 = '7f 45 4c 46 02 01 01 00 00 00 00 00 00 00 00 00 02 00 3e 00';
const ELF_ARM64 = '7f 45 4c 46 02 01 01 00 00 00 00 00 00 00 00 00 02 00 b7 00';

describe('the installed programs are checked without starting each one', () => {
  it('accepts 64-bit x86 ELF files and names every other file', () => {
    expect(elfProblems(`/opt/k8s/bin/kubelet ${ELF_X86_64}\n`)).toEqual([]);
    expect(
      elfProblems(
        `/opt/k8s/bin/kubelet ${ELF_ARM64}\n/opt/k8s/bin/kube-proxy\n/opt/k8s/bin/kubectl 23 21 2f 62\n`,
      ),
    ).toEqual([
      '/opt/k8s/bin/kubelet is not a 64-bit x86 program',
      '/opt/k8s/bin/kube-proxy is not a 64-bit x86 program',
      '/opt/k8s/bin/kubectl is not a 64-bit x86 program',
    ]);
  });
});

describe('each VM receives only what its roles run, streamed into tar', () => {
  const spec = defaultSpec();
  let dir = '';
  const artifacts: Record<string, string> = {};
  const savedCache = process.env.KLAB_CACHE_DIR;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'klab-binaries-'));
    process.env.KLAB_CACHE_DIR = path.join(dir, 'cache');
    const k8s = path.join(dir, 'src', 'kubernetes', 'bin');
    await mkdir(k8s, { recursive: true });
    for (const bin of [
      'kube-apiserver',
      'kube-controller-manager',
      'kube-scheduler',
      'kubelet',
      'kube-proxy',
      'kubectl',
    ]) {
      await writeFile(path.join(k8s, bin), bin);
    }
    await mkdir(path.join(dir, 'src', 'flannel'));
    for (const file of ['flanneld', 'mk-docker-opts.sh']) {
      await writeFile(path.join(dir, 'src', 'flannel', file), file);
    }
    artifacts.kubernetes = path.join(dir, 'kubernetes.tar.gz');
    artifacts.flannel = path.join(dir, 'flannel.tar.gz');
    artifacts.etcd = path.join(dir, 'etcd-debs.tar');
    artifacts.docker = path.join(dir, 'docker-debs.tar');
    await execa('tar', ['-czf', artifacts.kubernetes, '-C', path.join(dir, 'src'), 'kubernetes']);
    await execa('tar', ['-czf', artifacts.flannel, '-C', path.join(dir, 'src'), 'flannel']);
    await mkdir(path.join(dir, 'src', 'debs'));
    await writeFile(path.join(dir, 'src', 'debs', 'a_1_amd64.deb'), 'deb');
    for (const debs of [artifacts.etcd, artifacts.docker]) {
      await execa('tar', ['-cf', debs, '-C', path.join(dir, 'src', 'debs'), 'a_1_amd64.deb']);
    }
  });
  afterAll(() => {
    if (savedCache === undefined) delete process.env.KLAB_CACHE_DIR;
    else process.env.KLAB_CACHE_DIR = savedCache;
  });

  /** What the step wrote to the log ("[vm] line"), for the last install. */
  let lines: string[] = [];

  /** Installs on a VM that has the zstd program (klab's box) or not (Ubuntu 18.04's box). */
  async function install(vmName: string, guestZstd = true): Promise<FakeHost> {
    lines = [];
    const vm = spec.vms.find((v) => v.name === vmName);
    if (!vm) throw new Error(vmName);
    const host = new FakeHost(vmName, (argv) => {
      if (argv[0] === 'sh' && argv[2] === 'command -v "$1"' && argv[4] === 'zstd') {
        return guestZstd ? { stdout: '/usr/bin/zstd\n' } : { exitCode: 1 };
      }
      if (argv[0] === 'sh' && String(argv[2]).includes('od -An')) {
        return {
          stdout: argv
            .slice(4)
            .map((file) => `${file} ${ELF_X86_64}\n`)
            .join(''),
        };
      }
      return undefined;
    });
    const ctx = testStepContext(
      spec,
      { [vmName]: host },
      {
        sink: {
          emit: (event) => {
            if (event.kind === 'output') lines.push(`[${event.source}] ${event.line}`);
          },
        },
        artifactFile: (id) => {
          const file = artifacts[id];
          if (!file) throw new Error(`no artifact ${id}`);
          return file;
        },
      },
    );
    await binariesStep.apply(ctx, vm);
    return host;
  }

  async function programsSent(host: FakeHost): Promise<string[]> {
    const files = host.calls.filter((call) => call.stdinFile).map((call) => call.stdinFile ?? '');
    const listed: string[] = [];
    for (const file of files) {
      listed.push(
        ...(await execa('tar', [...compressionArgs(file), '-tf', file])).stdout.split('\n'),
      );
    }
    return listed
      .filter((entry) => /\/(kube[-a-z]*|flanneld)$/.test(entry))
      .map((e) => path.basename(e))
      .sort();
  }

  it('the master gets the control plane, kube-proxy and kubectl, never the kubelet', async () => {
    const host = await install('master');
    expect(await programsSent(host)).toEqual([
      'flanneld',
      'kube-apiserver',
      'kube-controller-manager',
      'kube-proxy',
      'kube-scheduler',
      'kubectl',
    ]);
    // Streamed: nothing is copied to the VM's disk first.
    expect(host.uploads).toEqual([]);
    // zstd-compressed for a VM that has zstd (this host has it: the test tier installs it).
    expect(host.commands()).toContain('sudo tar -I zstd -xf - -C /opt/k8s/stage/kubernetes');
    expect(host.calls.some((call) => call.stdinFile?.endsWith('.tar.zst'))).toBe(true);
    // The log says what travelled, how compressed and how big.
    expect(lines.join('\n')).toMatch(
      /\[master\] binaries: kubernetes: \w+\.tar\.zst, \d+ KiB \(kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubectl\)/,
    );
  });

  it('a node gets the kubelet, kube-proxy and kubectl, never the apiserver; gzip where the VM has no zstd', async () => {
    const host = await install('node1', false);
    expect(await programsSent(host)).toEqual(['flanneld', 'kube-proxy', 'kubectl', 'kubelet']);
    expect(host.commands()).toContain('sudo tar -z -xf - -C /opt/k8s/stage/kubernetes');
    expect(host.calls.some((call) => call.stdinFile?.endsWith('.tar.zst'))).toBe(false);
    expect(
      host.commands().some((c) => c.includes('dpkg -i --force-confold --force-unsafe-io')),
    ).toBe(true);
  });
});

describe('every VM receives the program of every service its steps run there', () => {
  // The unit's program for each service step; a step placed on a VM needs it there.
  const programs: [Step, string[]][] = [
    [controlPlaneStep, ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler']],
    [flannelStep, ['flanneld']],
    [kubeProxyStep, ['kube-proxy']],
    [kubeletStep, ['kubelet']],
  ];

  it.each(STACKS.map((stack) => [stack]))('%s stack', (stack) => {
    const spec = defaultSpec();
    const profile = installProfile(stack);
    for (const vm of spec.vms) {
      const placedHere = profile.archives
        .filter((archive) => isOn(vm, archive.on))
        .flatMap((archive) => archive.members.map((member) => path.posix.basename(member)));
      for (const [step, needed] of programs) {
        const runsHere = (step.targets ? step.targets(spec) : spec.vms).some(
          (target) => target.name === vm.name,
        );
        if (runsHere)
          expect(placedHere, `${step.id} on ${vm.name}`).toEqual(expect.arrayContaining(needed));
      }
    }
  });
});

describe('the binaries lesson checks the programs, however they were installed', () => {
  const spec = defaultSpec();
  /** A VM whose /opt/k8s/bin holds `present` (x86 ELF) and whose PATH lacks `notOnPath`. */
  function vmWith(present: (file: string) => boolean, notOnPath: readonly string[] = []) {
    return new FakeHost('vm', (argv) => {
      if (argv[0] === 'sh' && String(argv[2]).includes('MISSING')) {
        return {
          stdout: argv
            .slice(4)
            .map((file) => (present(file) ? `${file} ${ELF_X86_64}\n` : `MISSING ${file}\n`))
            .join(''),
        };
      }
      if (argv[0] === 'env' && String(argv[1]).startsWith('PATH=')) {
        return {
          stdout: argv
            .slice(6)
            .filter((p) => notOnPath.includes(p))
            .join('\n'),
        };
      }
      return undefined;
    });
  }
  async function outcome(vmName: string, host: FakeHost): Promise<string[]> {
    const vm = spec.vms.find((v) => v.name === vmName);
    if (!vm) throw new Error(vmName);
    const ctx = testStepContext(spec, { [vmName]: host });
    return (await binariesStep.outcome?.(ctx, vm)) ?? ['no outcome'];
  }

  it('passes a master and a node with every program of their roles', async () => {
    expect(
      await outcome(
        'master',
        vmWith(() => true),
      ),
    ).toEqual([]);
    expect(
      await outcome(
        'node1',
        vmWith(() => true),
      ),
    ).toEqual([]);
  });

  it('asks a node for the kubelet and Docker, the master for the control plane and etcd', async () => {
    const node = vmWith(() => true);
    await outcome('node1', node);
    const asked = node.commands().join('\n');
    expect(asked).toContain('/opt/k8s/bin/kubelet');
    expect(asked).not.toContain('kube-apiserver');
    // (node1 is an etcd member in the default lab: the master and the first two nodes.)
    expect(asked).toMatch(/ flanneld -- etcd etcdctl docker dockerd containerd runc$/m);
    const master = vmWith(() => true);
    await outcome('master', master);
    expect(master.commands().join('\n')).toContain('/opt/k8s/bin/kube-apiserver');
    expect(master.commands().join('\n')).toMatch(/ -- etcd etcdctl$/m);
  });

  it('names a missing program, one not on PATH, and a missing package', async () => {
    const problems = await outcome(
      'node1',
      vmWith((file) => !file.endsWith('/kubelet'), ['kube-proxy', 'dockerd']),
    );
    expect(problems).toEqual([
      '/opt/k8s/bin/kubelet is missing (or not executable)',
      'kube-proxy is not on the PATH of a non-login shell (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin): link it into /usr/local/bin',
      'dockerd is not installed (not on /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)',
    ]);
  });
});
