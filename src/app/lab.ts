/** A lab opened from its directory: spec, state, Vagrant; and SSH sessions into its VMs. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { kubectlOnMaster } from '../../provision/lib/cluster.js';
import type { StepContext } from '../../provision/lib/step.js';
import { libvirt } from '../adapters/libvirt.js';
import { runProcess } from '../adapters/process.js';
import { Vagrant } from '../adapters/vagrant.js';
import { KlabError, tail } from '../model/errors.js';
import { type EventSink, output, systemClock, task } from '../model/events.js';
import { type LabPaths, labPaths, libvirtNames } from '../model/lab-paths.js';
import { packagePath } from '../model/package-root.js';
import type { Machines, Virt } from '../model/ports.js';
import type { RemoteResult, RemoteRunOptions } from '../model/remote.js';
import type { LabSpec, StackName } from '../model/spec.js';
import { loadSpec, type SpecOverrides } from '../model/spec-file.js';
import { type LabState, loadState } from '../model/state.js';
import { clusterTuning } from '../model/tuning.js';
import { artifactPath } from '../stacks/cache.js';
import { hostRunsGuestPrograms, hostTool, kubectlMember } from '../stacks/host-tools.js';
import { loadStack } from '../stacks/index.js';
import { installProfile } from '../stacks/install.js';
import { hostImageStore } from './image-store.js';
import { connectAll, type HostPool } from './session.js';
import { rememberSshConfig } from './ssh-config-cache.js';

export interface LabOptions extends SpecOverrides {
  dir: string;
}

export interface Lab {
  paths: LabPaths;
  spec: LabSpec;
  state: LabState;
  /** The VM provider (vagrant): boot, halt, destroy, ssh-config, boxes. */
  vagrant: Machines;
  /** libvirt (virsh): snapshots, domain states; unit tests pass a fake. */
  libvirt: Virt;
  sink: EventSink;
}

/** The outside world a lab talks to; unit tests pass fakes. */
export interface LabPorts {
  machines?: Machines;
  virt?: Virt;
}

/** What every app call gets: where the lab is (and flag overrides), where events go, fakes. */
export interface LabRequest extends LabOptions {
  sink: EventSink;
  ports?: LabPorts;
}

export async function openLab(request: LabRequest): Promise<Lab> {
  const { sink, ports = {}, ...options } = request;
  const paths = labPaths(options.dir);
  const spec = await loadSpec(paths.dir, options);
  const state = await loadState(paths.stateFile);
  if (ports.machines) {
    return { paths, spec, state, vagrant: ports.machines, libvirt: ports.virt ?? libvirt, sink };
  }
  const vagrant = new Vagrant(paths.dir, {
    onLine: (line) => sink.emit({ kind: 'output', code: 'OUTPUT', source: 'vagrant', line }),
  });
  const remembered = rememberSshConfig(vagrant, ports.virt ?? libvirt, {
    file: paths.sshConfigFile,
    domain: libvirtNames(spec).domain,
  });
  return { paths, spec, state, vagrant: remembered.machines, libvirt: remembered.virt, sink };
}

/** A lab exists once klab rendered its Vagrantfile. */
export function requireCreated(lab: Lab): void {
  if (!existsSync(lab.paths.vagrantfile)) {
    throw new KlabError('KLAB_NO_LAB', `no lab in ${lab.paths.dir}`, {
      hint: 'Create one with "klab create" (or point at it with --dir).',
    });
  }
}

/** openLab for the commands that need a created lab (up, halt, ssh, verify, reset, ...). */
export async function openCreatedLab(request: LabRequest): Promise<Lab> {
  const lab = await openLab(request);
  requireCreated(lab);
  return lab;
}

/** The stack the lab runs: the one create settled on (fallbacks included), else the spec's. */
export function labStack(lab: Lab): StackName {
  return lab.state.stack ?? lab.spec.stack;
}

export function stepContext(lab: Lab, pool: HostPool): StepContext {
  const stackName = labStack(lab);
  const stack = loadStack(stackName);
  const ctx: StepContext = {
    spec: lab.spec,
    sink: lab.sink,
    clock: systemClock,
    host: (vm) => pool.get(vm),
    provisionFile: (...parts) => readFile(packagePath('provision', ...parts), 'utf8'),
    profile: installProfile(stackName),
    tuning: clusterTuning(lab.spec, lab.state.accelerator),
    pkiDir: lab.paths.pkiDir,
    artifactFile: (id) => {
      const artifact = stack.artifacts.find((entry) => entry.id === id);
      if (!artifact) throw new KlabError('KLAB_INTERNAL', `the ${stack.name} stack has no ${id}`);
      return artifactPath(artifact);
    },
  };
  ctx.imageStore = hostImageStore(ctx.artifactFile, lab.sink);
  const program = hostKubectl(ctx, lab.sink);
  ctx.adminKubectl = async (args, options) => {
    const file = await program();
    if (!file) return kubectlOnMaster(ctx, args, options);
    return runHostKubectl(
      [
        file,
        `--kubeconfig=${path.join(lab.paths.pkiDir, 'kubeconfigs', 'admin.kubeconfig')}`,
        ...args,
      ],
      options,
    );
  };
  return ctx;
}

/**
 * klab's kubectl for the host, cut from the stack's archive (undefined, and kubectl runs on
 * the master, when the host cannot run the VMs' programs or the archive is not at hand).
 * Started at most once per command; the reason it is not used goes to the log.
 */
function hostKubectl(ctx: StepContext, sink: EventSink): () => Promise<string | undefined> {
  let job: Promise<string | undefined> | undefined;
  return () => {
    job ??= (async () => {
      const found = kubectlMember(ctx.profile.archives);
      if (!found || !hostRunsGuestPrograms(process.platform, process.arch)) {
        output(
          sink,
          'klab',
          `kubectl runs on the master (this host does not run the VMs' programs)`,
        );
        return undefined;
      }
      try {
        const file = await hostTool(ctx.artifactFile(found.artifact), found.member);
        output(sink, 'klab', `kubectl for klab's own checks runs on the host: ${file}`);
        return file;
      } catch (error) {
        output(sink, 'klab', `kubectl runs on the master: ${(error as Error).message}`);
        return undefined;
      }
    })();
    return job;
  };
}

/**
 * The environment of klab's kubectl on the host: the lab's apiserver is on a libvirt network
 * of this host, so a proxy the user set for downloads (HTTPS_PROXY, common behind slow
 * links) must not carry its requests (Go's kubectl treats an empty variable as unset).
 */
export function hostKubectlEnv(extra: Record<string, string> = {}): Record<string, string> {
  const noProxy: Record<string, string> = {};
  for (const name of ['HTTPS_PROXY', 'HTTP_PROXY', 'ALL_PROXY']) {
    noProxy[name] = '';
    noProxy[name.toLowerCase()] = '';
  }
  return { ...noProxy, ...extra };
}

/** kubectl on the host, answering as a command on a VM would (RemoteRunOptions, KlabError). */
async function runHostKubectl(
  argv: readonly string[],
  options: RemoteRunOptions,
): Promise<RemoteResult> {
  const result = await runProcess(argv, {
    ...(options.stdin !== undefined ? { input: options.stdin } : {}),
    env: hostKubectlEnv(options.env),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
  const shown = argv.slice(2).join(' ');
  if (result.timedOut) {
    throw new KlabError('KLAB_TIMEOUT', `kubectl ${shown} (from the host) timed out`, {
      command: [...argv],
      outputTail: tail(`${result.stdout}\n${result.stderr}`),
    });
  }
  if (result.exitCode !== 0 && !options.allowFailure) {
    throw new KlabError(
      'KLAB_STEP_FAILED',
      `kubectl ${shown} (from the host) failed (exit ${result.exitCode})`,
      { command: [...argv], outputTail: tail(`${result.stdout}\n${result.stderr}`) },
    );
  }
  return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
}

/** The task that opens SSH to the VMs, as the JSON output titles it (the bench reads it). */
export const CONNECT_TASK = 'Connect to every VM over SSH';

/** SSH sessions into the lab's VMs (or only the named ones), closed when fn ends. */
export async function withHosts<T>(
  lab: Lab,
  fn: (pool: HostPool) => Promise<T>,
  vms: readonly string[] = lab.spec.vms.map((vm) => vm.name),
): Promise<T> {
  const pool = await task(lab.sink, CONNECT_TASK, () =>
    connectAll(lab.vagrant, vms, lab.sink, lab.spec.timeouts.ssh * 1000),
  );
  try {
    return await fn(pool);
  } finally {
    await pool.closeAll();
  }
}
