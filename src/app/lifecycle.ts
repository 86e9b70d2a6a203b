/**
 * The lab's lifecycle: init, create (resumable), up, halt, destroy, status.
 * Commands call exactly one of these; adapters do the spawning.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { desiredDefaultRoute, parseDefaultRoutes } from '../../provision/default-route/index.js';
import { provisioningSteps } from '../../provision/index.js';
import { findExecutable } from '../adapters/process.js';
import { runChecks } from '../checks/index.js';
import { KlabError, tail } from '../model/errors.js';
import { type EventSink, task } from '../model/events.js';
import type { HypervisorChoice } from '../model/hypervisor.js';
import { labPaths, libvirtNames } from '../model/lab-paths.js';
import { quote } from '../model/shell.js';
import type { StackName } from '../model/spec.js';
import { saveState } from '../model/state.js';
import { generatePki } from '../pki/generate.js';
import { renderKlabYaml } from '../render/klab-yaml.js';
import { renderVagrantfile } from '../render/vagrantfile.js';
import { ensureStack } from './artifacts.js';
import {
  boxBuildPaths,
  ensureLocalBox,
  FALLBACK_BOX,
  FALLBACK_STACK,
  LOCAL_BOXES,
  localRecipe,
} from './box.js';
import { boxDeps } from './box-deps.js';
import { checkpointMode, resourceNeeds } from './host-check.js';
import { detectHypervisor } from './hypervisor-detect.js';
import {
  type Lab,
  type LabOptions,
  openLab,
  requireCreated,
  stepContext,
  withHosts,
} from './lab.js';
import { runSteps } from './pipeline.js';
import {
  assertNoFailures,
  checkLibvirt,
  checkResources,
  checkSubnets,
  checkTools,
  checkVagrantLibvirt,
  freeDiskGb,
} from './preflight.js';
import { connectAll } from './session.js';
import { checkpointHook, stepClocks } from './snapshots.js';

/** Directories that may hold a kernel for the KVM probe: those of locally built boxes. */
async function probeKernelDirs(): Promise<string[]> {
  const dirs: string[] = [];
  for (const recipe of LOCAL_BOXES) dirs.push((await boxBuildPaths(recipe)).dir);
  return dirs;
}

export async function chooseLabHypervisor(lab: Lab): Promise<HypervisorChoice> {
  const choice = await detectHypervisor(lab.spec.hypervisor, lab.sink, await probeKernelDirs());
  if (choice.notice) lab.sink.emit({ kind: 'notice', level: 'warn', text: choice.notice });
  return choice;
}

const BOX_DOWNLOAD_TIMEOUT_MS = 10 * 60_000;

/**
 * The box to boot: the one the lab already uses, the spec's if Vagrant has it, a local
 * build for klab/* boxes, a download otherwise; and when that fails and the user did not
 * insist on the box, the locally built Debian box plus the mirror-only stack.
 */
export async function resolveBox(lab: Lab): Promise<{ box: string; stack: string }> {
  const { spec, state, sink, vagrant } = lab;
  if (state.box && existsSync(lab.paths.vagrantfile) && !spec.insisted.box) {
    return { box: state.box, stack: state.stack ?? spec.stack };
  }
  const installed = await boxDeps(sink, vagrant).installedBoxes();
  const recipe = localRecipe(spec.box);
  if (installed.includes(spec.box) && !recipe) return { box: spec.box, stack: spec.stack };
  if (recipe) {
    await ensureLocalBox(recipe, boxDeps(sink, vagrant));
    return { box: spec.box, stack: spec.stack };
  }
  // The task fails visibly (FAIL line) when the download does; the fallback follows.
  const added = await task(sink, `Download box ${spec.box}`, async () => {
    const result = await vagrant.boxAdd(spec.box, spec.box, BOX_DOWNLOAD_TIMEOUT_MS);
    if (result.exitCode !== 0 || result.timedOut) throw result;
    return result;
  }).catch((error: unknown) =>
    error && typeof error === 'object' && 'exitCode' in error
      ? (error as { exitCode: number; stdout: string; stderr: string; timedOut: boolean })
      : { exitCode: 1, stdout: '', stderr: String(error), timedOut: false },
  );
  if (added.exitCode === 0 && !added.timedOut) return { box: spec.box, stack: spec.stack };

  const why = tail(`${added.stdout}\n${added.stderr}`, 3) || 'no answer';
  if (spec.insisted.box) {
    throw new KlabError('KLAB_BOX_UNAVAILABLE', `the box ${spec.box} cannot be downloaded`, {
      outputTail: why,
      hint: `Build one locally instead: "sudo klab box build" and set "box: ${FALLBACK_BOX}" in klab.yaml.`,
    });
  }
  const stack = spec.insisted.stack ? spec.stack : FALLBACK_STACK;
  const message =
    `The default box ${spec.box} cannot be downloaded from this host, so klab falls back to ` +
    `a locally built ${FALLBACK_BOX} box` +
    (stack === FALLBACK_STACK && spec.stack !== FALLBACK_STACK
      ? ` and the mirror-only "${FALLBACK_STACK}" stack (Kubernetes 1.20 from Debian sources instead of ${spec.stack}).`
      : '.') +
    ' Set box/stack in klab.yaml to choose yourself.';
  sink.emit({ kind: 'notice', level: 'warn', text: message });
  state.fallbacks = [...(state.fallbacks ?? []), message];
  const fallback = localRecipe(FALLBACK_BOX);
  if (!fallback) throw new KlabError('KLAB_INTERNAL', `no recipe for ${FALLBACK_BOX}`);
  await ensureLocalBox(fallback, boxDeps(sink, vagrant));
  return { box: FALLBACK_BOX, stack };
}

async function writeIfChanged(file: string, content: string): Promise<boolean> {
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current === content) return false;
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
  return true;
}

export async function renderLabVagrantfile(
  lab: Lab,
  hypervisor: HypervisorChoice,
  box: string,
): Promise<boolean> {
  await mkdir(lab.paths.logDir, { recursive: true });
  return writeIfChanged(
    lab.paths.vagrantfile,
    renderVagrantfile(lab.spec, hypervisor.settings, box),
  );
}

/** First VM alone (it uploads the box into the storage pool), then the rest. */
export function bootOrder(
  vms: readonly string[],
  accelerator: 'kvm' | 'tcg',
  cores: number,
): { vms: string[]; parallel: boolean }[] {
  const [first, ...rest] = vms;
  if (!first) return [];
  const batches = [{ vms: [first], parallel: false }];
  if (rest.length > 0) {
    // Under TCG every vCPU is a busy host thread; booting in parallel on a small host
    // only makes every VM slower.
    batches.push({ vms: rest, parallel: accelerator === 'kvm' || cores >= 4 });
  }
  return batches;
}

async function bootVms(lab: Lab, accelerator: 'kvm' | 'tcg'): Promise<void> {
  const batches = bootOrder(
    lab.spec.vms.map((vm) => vm.name),
    accelerator,
    os.cpus().length,
  );
  for (const batch of batches) {
    await task(
      lab.sink,
      `Boot ${batch.vms.join(', ')}${batch.parallel ? ' (in parallel)' : ''}`,
      () =>
        lab.vagrant.up(batch.vms, batch.parallel, lab.spec.timeouts.boot * 1000 * batch.vms.length),
    );
  }
}

/**
 * A run killed in the middle of a snapshot (between pause and resume) leaves VMs paused:
 * resume them, and say so. Their clocks stood still meanwhile; the caller steps them.
 */
async function resumeLeftPaused(lab: Lab): Promise<string[]> {
  const names = libvirtNames(lab.spec);
  const resumed: string[] = [];
  for (const vm of lab.spec.vms) {
    const domain = names.domain(vm.name);
    if ((await lab.libvirt.domainState(domain)) === 'paused') {
      await lab.libvirt.resume(domain);
      resumed.push(vm.name);
    }
  }
  if (resumed.length > 0) {
    lab.sink.emit({
      kind: 'notice',
      level: 'warn',
      text: `${resumed.join(', ')} had been left paused by an interrupted run (a snapshot under way); resumed them.`,
    });
  }
  return resumed;
}

async function preflight(lab: Lab): Promise<void> {
  const findings = await task(lab.sink, 'Check the host', async () => {
    const tools = await checkTools();
    const results = [...tools];
    if (tools.every((finding) => finding.status === 'ok')) {
      results.push(await checkVagrantLibvirt(), await checkLibvirt());
    }
    results.push(await checkSubnets(lab.spec), ...(await checkResources(lab.spec)));
    return results;
  });
  for (const finding of findings.filter((f) => f.status === 'warn')) {
    lab.sink.emit({ kind: 'notice', level: 'warn', text: `${finding.check}: ${finding.detail}` });
  }
  assertNoFailures(findings);
}

export async function initLab(options: LabOptions, sink: EventSink): Promise<string[]> {
  const paths = labPaths(options.dir);
  await mkdir(paths.dir, { recursive: true });
  const written: string[] = [];
  if (!existsSync(paths.specFile)) {
    const lab = await openLab(options, sink);
    await writeFile(paths.specFile, renderKlabYaml(lab.spec));
    written.push(paths.specFile);
  }
  const lab = await openLab(options, sink);
  const hypervisor = await chooseLabHypervisor(lab);
  if (await renderLabVagrantfile(lab, hypervisor, lab.state.box ?? lab.spec.box)) {
    written.push(paths.vagrantfile);
  }
  return written;
}

export async function createLab(options: LabOptions, sink: EventSink): Promise<void> {
  const lab = await openLab(options, sink);
  const started = Date.now();
  await preflight(lab);
  const hypervisor = await chooseLabHypervisor(lab);
  const resolved = await resolveBox(lab);
  const box = resolved.box;
  lab.state.box = box;
  const stack = await ensureStack(lab, resolved.stack);
  lab.state.stack = stack;
  lab.state.accelerator = hypervisor.accelerator;
  lab.state.createdAt ??= new Date().toISOString();
  if (!lab.state.checkpoints) {
    lab.state.checkpoints = checkpointMode(lab.spec, await freeDiskGb());
    if (lab.state.checkpoints === 'last-step') {
      const needs = resourceNeeds(lab.spec);
      const message =
        `Not enough free disk for a checkpoint after every step (about ${needs.checkpointGb} GB more), ` +
        'so klab keeps only the one after the last step (after-kubelet). Free space and run ' +
        '"klab snapshot save NAME" whenever you want more.';
      sink.emit({ kind: 'notice', level: 'warn', text: message });
      lab.state.fallbacks = [...(lab.state.fallbacks ?? []), message];
    }
  }
  await renderLabVagrantfile(lab, hypervisor, box);
  await saveState(lab.paths.stateFile, lab.state);
  await task(
    sink,
    'Generate the lab PKI (CA, certificates, kubeconfigs)',
    () => generatePki({ ...lab.spec, stack: stack as StackName }, { dir: lab.paths.pkiDir }),
    (result) => `${result.issued.length} issued, ${result.reused.length} reused`,
  );

  const resumed = await resumeLeftPaused(lab);
  await bootVms(lab, hypervisor.accelerator);
  await withHosts(lab, async (pool) => {
    if (resumed.length > 0) {
      await task(sink, 'Step every guest clock to the host clock', () => stepClocks(lab, pool));
    }
    const steps = provisioningSteps(lab.spec);
    const checkpoint = checkpointHook(lab, pool, {
      mode: lab.state.checkpoints ?? 'every-step',
      lastStep: steps[steps.length - 1]?.id ?? '',
    });
    await runSteps(steps, stepContext(lab, pool), lab.state, {
      afterStep: async (step, changed) => {
        await saveState(lab.paths.stateFile, lab.state);
        await checkpoint(step.id, changed);
      },
    });
    // The tutorial's own check, after the last checkpoint: the test app is not in any.
    await runChecks(stepContext(lab, pool));
  });
  await saveState(lab.paths.stateFile, lab.state);
  const seconds = Math.round((Date.now() - started) / 1000);
  sink.emit({
    kind: 'result',
    text:
      `Lab "${lab.spec.name}" is ready: ${lab.spec.vms.map((vm) => `${vm.name} ${vm.ip}`).join(', ')} ` +
      `(${seconds} s, box ${box}, stack ${stack}, ${hypervisor.accelerator.toUpperCase()}).\n` +
      `Next: klab ssh ${lab.spec.vms[0]?.name ?? 'master'} -- kubectl get nodes; klab verify; klab snapshot list`,
  });
}

/** Start a halted lab and check that what provisioning did survived the reboot. */
export async function upLab(options: LabOptions, sink: EventSink): Promise<void> {
  const lab = await openLab(options, sink);
  requireCreated(lab);
  const resumed = await resumeLeftPaused(lab);
  await bootVms(lab, lab.state.accelerator ?? 'tcg');
  await withHosts(lab, async (pool) => {
    if (resumed.length > 0) {
      await task(sink, 'Step every guest clock to the host clock', () => stepClocks(lab, pool));
    }
    const ctx = stepContext(lab, pool);
    const drifted: string[] = [];
    await task(sink, 'Check that every provisioning step survived the restart', async () => {
      for (const step of provisioningSteps(lab.spec)) {
        const done = lab.spec.vms.filter((vm) => lab.state.steps[vm.name]?.[step.id]);
        // verify waits until the part is healthy: services come up on their own after a boot.
        const results = await Promise.allSettled(done.map((vm) => step.verify(ctx, vm)));
        results.forEach((result, index) => {
          if (result.status === 'rejected') drifted.push(`${done[index]?.name}: ${step.id}`);
        });
      }
    });
    if (drifted.length > 0) {
      sink.emit({
        kind: 'notice',
        level: 'warn',
        text: `Not as provisioned after the restart: ${drifted.join(', ')}. Run "klab create" to repair.`,
      });
    }
  });
  sink.emit({ kind: 'result', text: `Lab "${lab.spec.name}" is up.` });
}

export async function haltLab(options: LabOptions, sink: EventSink): Promise<void> {
  const lab = await openLab(options, sink);
  requireCreated(lab);
  await task(sink, `Halt ${lab.spec.vms.map((vm) => vm.name).join(', ')}`, () =>
    lab.vagrant.halt(),
  );
}

/** Destroy everything the lab made in libvirt; klab.yaml stays. */
export async function destroyLab(options: LabOptions, sink: EventSink): Promise<string[]> {
  const lab = await openLab(options, sink);
  const names = libvirtNames(lab.spec);
  const ours = (name: string) => name.startsWith(names.domainPrefix);
  const removed: string[] = [];
  const domains = (await lab.libvirt.domains()).filter(ours);

  await task(sink, 'Delete snapshots (libvirt keeps domains that still have some)', async () => {
    for (const domain of domains) {
      for (const snapshot of await lab.libvirt.snapshots(domain)) {
        await lab.libvirt.deleteSnapshot(domain, snapshot);
      }
    }
  });
  if (existsSync(lab.paths.vagrantfile)) {
    await task(sink, 'Destroy the VMs', () => lab.vagrant.destroy());
  }
  await task(sink, 'Remove what is left in libvirt', async () => {
    for (const domain of (await lab.libvirt.domains()).filter(ours)) {
      await lab.libvirt.removeDomain(domain);
      removed.push(`domain ${domain}`);
    }
    for (const volume of (await lab.libvirt.volumes()).filter(ours)) {
      await lab.libvirt.removeVolume(volume);
      removed.push(`volume ${volume}`);
    }
    const networks = await lab.libvirt.networks();
    for (const network of [names.network, names.managementNetwork]) {
      if (networks.includes(network)) {
        await lab.libvirt.removeNetwork(network);
        removed.push(`network ${network}`);
      }
    }
  });
  await rm(lab.paths.stateFile, { force: true });
  await rm(path.join(lab.paths.dir, '.vagrant'), { recursive: true, force: true });
  sink.emit({
    kind: 'result',
    text: `Lab "${lab.spec.name}" destroyed; klab.yaml and logs are kept.`,
  });
  return removed;
}

export interface VmStatus {
  name: string;
  state: string;
  ip: string;
  defaultRoute: string;
  steps: string;
}

export async function labStatus(options: LabOptions, sink: EventSink): Promise<VmStatus[]> {
  const lab = await openLab(options, sink);
  const states = existsSync(lab.paths.vagrantfile)
    ? await lab.vagrant.status()
    : new Map<string, string>();
  const steps = provisioningSteps(lab.spec);
  const want = desiredDefaultRoute(lab.spec);
  return Promise.all(
    lab.spec.vms.map(async (vm): Promise<VmStatus> => {
      const state = states.get(vm.name) ?? 'not_created';
      // Only the steps that run on this VM (etcd on members, kubelet on nodes, ...).
      const mine = steps.filter((step) =>
        (step.targets ? step.targets(lab.spec) : lab.spec.vms).some((t) => t.name === vm.name),
      );
      const done = mine.filter((step) => lab.state.steps[vm.name]?.[step.id]).length;
      let route = '-';
      if (state === 'running') {
        route = await routeOf(lab, vm.name).catch(
          (error: unknown) => `unreachable (${(error as Error).message})`,
        );
        if (route === `via ${want.via} dev ${want.dev}`) route += ' (ok)';
      }
      return {
        name: vm.name,
        state,
        ip: vm.ip,
        defaultRoute: route,
        steps: `${done}/${mine.length}`,
      };
    }),
  );
}

async function routeOf(lab: Lab, vm: string): Promise<string> {
  const pool = await connectAll(lab.vagrant, [vm], lab.sink, 20_000);
  try {
    const result = await pool.get(vm).run(['ip', '-4', 'route', 'show', 'default']);
    const routes = parseDefaultRoutes(result.stdout);
    if (routes.length === 0) return 'none';
    return routes.map((route) => `via ${route.via} dev ${route.dev}`).join(', ');
  } finally {
    await pool.closeAll();
  }
}

/** argv for the system ssh client to a lab VM (interactive or one command). */
export async function sshArgv(
  options: LabOptions,
  sink: EventSink,
  vm: string,
  command: readonly string[],
) {
  const lab = await openLab(options, sink);
  requireCreated(lab);
  if (!lab.spec.vms.some((entry) => entry.name === vm)) {
    throw new KlabError('KLAB_VM_UNKNOWN', `there is no VM "${vm}" in this lab`, {
      hint: `The lab's VMs are: ${lab.spec.vms.map((entry) => entry.name).join(', ')}.`,
    });
  }
  if (!(await findExecutable('ssh'))) {
    throw new KlabError('KLAB_TOOL_MISSING', 'the ssh client is not installed', {
      hint: 'sudo apt-get install openssh-client',
    });
  }
  const config = await lab.vagrant.sshConfig(vm);
  return [
    'ssh',
    ...(command.length === 0 ? ['-t'] : []),
    '-i',
    config.identityFile,
    '-p',
    String(config.port),
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'LogLevel=ERROR',
    `${config.user}@${config.hostName}`,
    ...(command.length > 0 ? ['--', command.map(quote).join(' ')] : []),
  ];
}
