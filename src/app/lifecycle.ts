/** The lab's lifecycle after create: boot order, up, halt, destroy, and ssh. */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { findExecutable } from '../adapters/process.js';
import { sshPortAnswers } from '../adapters/ssh.js';
import { KlabError } from '../model/errors.js';
import { task } from '../model/events.js';
import { libvirtNames } from '../model/lab-paths.js';
import { quote } from '../model/shell.js';
import {
  type Lab,
  type LabRequest,
  openCreatedLab,
  openLab,
  stepContext,
  withHosts,
} from './lab.js';
import { stepClocksTask, unhealthySteps } from './snapshots.js';

/**
 * First VM alone (it uploads the box into the storage pool, which two `vagrant up` at once
 * would both try), then the rest in parallel. Even under TCG on two cores that is quicker:
 * much of a boot is Vagrant's SSH round trips (key, hostname, network), not guest CPU.
 * Measured on the 4-VM lab (2 cores, TCG, same hour): node1..3 one after the other 267 s,
 * in parallel 211 s (docs/performance.md).
 */
export function bootOrder(vms: readonly string[]): { vms: string[]; parallel: boolean }[] {
  const [first, ...rest] = vms;
  if (!first) return [];
  const batches = [{ vms: [first], parallel: false }];
  if (rest.length > 0) batches.push({ vms: rest, parallel: rest.length > 1 });
  return batches;
}

export async function bootVms(lab: Lab): Promise<void> {
  const batches = bootOrder(lab.spec.vms.map((vm) => vm.name));
  for (const batch of batches) {
    await task(
      lab.sink,
      `Boot ${batch.vms.join(', ')}${batch.parallel ? ' (in parallel)' : ''}`,
      () =>
        lab.vagrant.up(batch.vms, batch.parallel, lab.spec.timeouts.boot * 1000 * batch.vms.length),
      { code: () => 'VMS_BOOTED', subject: batch.vms.join(',') },
    );
  }
}

/**
 * A run killed in the middle of a snapshot (between pause and resume) leaves VMs paused:
 * resume them, and say so. Their clocks stood still meanwhile; the caller steps them.
 */
export async function resumeLeftPaused(lab: Lab): Promise<string[]> {
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
      code: 'VMS_RESUMED',
      level: 'warn',
      text: `${resumed.join(', ')} had been left paused by an interrupted run (a snapshot under way); resumed them.`,
    });
  }
  return resumed;
}

/** Start a halted lab and check that what provisioning did survived the reboot. */
export async function upLab(request: LabRequest): Promise<void> {
  const lab = await openCreatedLab(request);
  const sink = lab.sink;
  const resumed = await resumeLeftPaused(lab);
  await bootVms(lab);
  await withHosts(lab, async (pool) => {
    if (resumed.length > 0) await stepClocksTask(lab, pool);
    // verify waits until each part is healthy: services come up on their own after a boot.
    const failures = await task(
      sink,
      'Check that every provisioning step survived the restart',
      () => unhealthySteps(lab, stepContext(lab, pool)),
      { code: (left) => (left.length === 0 ? 'LAB_HEALTHY' : 'TASK_DONE') },
    );
    const drifted = failures.map((f) => `${f.vm}: ${f.step}`);
    if (drifted.length > 0) {
      sink.emit({
        kind: 'notice',
        code: 'DRIFT_AFTER_RESTART',
        level: 'warn',
        text: `Not as provisioned after the restart: ${drifted.join(', ')}. Run "klab create" to repair.`,
      });
    }
  });
  sink.emit({ kind: 'result', code: 'LAB_UP', text: `Lab "${lab.spec.name}" is up.` });
}

export async function haltLab(request: LabRequest): Promise<void> {
  await haltOpenLab(await openCreatedLab(request));
}

/** Every VM shut down properly (vagrant halt). */
export async function haltOpenLab(lab: Lab): Promise<void> {
  await task(lab.sink, `Halt ${lab.spec.vms.map((vm) => vm.name).join(', ')}`, () =>
    lab.vagrant.halt(),
  );
}

/** Destroy everything the lab made in libvirt; klab.yaml stays. */
export async function destroyLab(request: LabRequest): Promise<string[]> {
  const lab = await openLab(request);
  const sink = lab.sink;
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
  const created = existsSync(lab.paths.vagrantfile);
  if (created) {
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
  const vagrantDir = path.join(lab.paths.dir, '.vagrant');
  const found =
    created ||
    domains.length > 0 ||
    removed.length > 0 ||
    existsSync(lab.paths.stateFile) ||
    existsSync(vagrantDir);
  await rm(lab.paths.stateFile, { force: true });
  await rm(vagrantDir, { recursive: true, force: true });
  if (!found) {
    // A mistyped --dir must not read as if a lab had gone.
    sink.emit({
      kind: 'result',
      code: 'LAB_NOTHING_TO_DESTROY',
      text: `Nothing of a lab "${lab.spec.name}" was found in ${lab.paths.dir} or in libvirt: nothing to destroy.`,
    });
    return removed;
  }
  const kept = existsSync(lab.paths.specFile) ? 'klab.yaml and logs are kept' : 'logs are kept';
  sink.emit({
    kind: 'result',
    code: 'LAB_DESTROYED',
    text: `Lab "${lab.spec.name}" destroyed; ${kept}.`,
  });
  return removed;
}

/** argv for the system ssh client to a lab VM (interactive or one command). */
export async function sshArgv(request: LabRequest, vm: string, command: readonly string[]) {
  const lab = await openCreatedLab(request);
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
  let config = await lab.vagrant.sshConfig(vm);
  // A remembered address that no longer answers (the VM was booted outside klab): ask again.
  if (!(await sshPortAnswers(config.hostName, config.port, 3000))) {
    config = await lab.vagrant.sshConfig(vm, { fresh: true });
  }
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
