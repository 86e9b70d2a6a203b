/** Host checks shared by `klab doctor` and `klab create`: each finding says how to fix it. */
import { existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { libvirt } from '../adapters/libvirt.js';
import { findExecutable, runProcess } from '../adapters/process.js';
import { type ErrorCode, KlabError } from '../model/errors.js';
import { libvirtNames } from '../model/lab-paths.js';
import type { LabSpec } from '../model/spec.js';
import { findSubnetCollisions, ipv4Addresses, resourceNeeds } from './host-check.js';

export interface Finding {
  check: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  fix?: string;
}

const APT_LINE =
  'sudo apt-get install vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils dnsmasq-base';

export const REQUIRED_TOOLS: readonly { tool: string; fix: string }[] = [
  { tool: 'vagrant', fix: APT_LINE },
  { tool: 'virsh', fix: APT_LINE },
  { tool: 'qemu-system-x86_64', fix: 'sudo apt-get install qemu-system-x86' },
  { tool: 'qemu-img', fix: 'sudo apt-get install qemu-utils' },
  { tool: 'ssh', fix: 'sudo apt-get install openssh-client' },
];

export async function checkTools(): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const { tool, fix } of REQUIRED_TOOLS) {
    const found = await findExecutable(tool);
    findings.push(
      found
        ? { check: `tool ${tool}`, status: 'ok', detail: found }
        : { check: `tool ${tool}`, status: 'fail', detail: 'not found on PATH', fix },
    );
  }
  return findings;
}

export async function checkVagrantLibvirt(): Promise<Finding> {
  const result = await runProcess(['vagrant', 'plugin', 'list'], {
    env: { VAGRANT_CHECKPOINT_DISABLE: '1' },
    timeoutMs: 60_000,
  });
  const line = result.stdout.split('\n').find((entry) => entry.startsWith('vagrant-libvirt'));
  if (result.exitCode === 0 && line) {
    return { check: 'vagrant-libvirt plugin', status: 'ok', detail: line.trim() };
  }
  return {
    check: 'vagrant-libvirt plugin',
    status: 'fail',
    detail: result.notFound ? 'vagrant is missing' : 'not installed',
    fix: 'sudo apt-get install vagrant-libvirt (or: vagrant plugin install vagrant-libvirt)',
  };
}

export async function checkLibvirt(): Promise<Finding> {
  if (!(await findExecutable('virsh'))) {
    return { check: 'libvirtd', status: 'fail', detail: 'virsh missing', fix: APT_LINE };
  }
  const reach = await libvirt.reachable();
  return reach.ok
    ? { check: 'libvirtd', status: 'ok', detail: reach.detail }
    : {
        check: 'libvirtd',
        status: 'fail',
        detail: `qemu:///system not reachable: ${reach.detail}`,
        fix: 'Start it: sudo systemctl start libvirtd (without systemd: sudo virtlogd -d && sudo libvirtd -d)',
      };
}

/** Bridges of this lab's own libvirt networks (from an earlier run): not collisions. */
export async function ownBridges(spec: LabSpec): Promise<string[]> {
  const names = libvirtNames(spec);
  const bridges: string[] = [];
  for (const network of [names.network, names.managementNetwork]) {
    const bridge = await libvirt.networkBridge(network).catch(() => undefined);
    if (bridge) bridges.push(bridge);
  }
  return bridges;
}

export async function checkSubnets(spec: LabSpec): Promise<Finding> {
  const collisions = findSubnetCollisions(
    spec,
    ipv4Addresses(os.networkInterfaces()),
    await ownBridges(spec),
  );
  if (collisions.length === 0) {
    return {
      check: 'lab subnets',
      status: 'ok',
      detail: `${spec.network.subnet} and ${spec.network.managementSubnet} are free on this host`,
    };
  }
  return {
    check: 'lab subnets',
    status: 'fail',
    detail: collisions
      .map((c) => `${c.setting} ${c.subnet} overlaps ${c.iface} (${c.address})`)
      .join('; '),
    fix: 'Pick unused ranges in klab.yaml (network.subnet / network.managementSubnet ...).',
  };
}

/**
 * Whether libvirt already has VMs under this lab's name that this directory did not make:
 * a lab of the same name in another directory, or one whose directory was deleted with its
 * VMs still defined. Vagrant would stop half-way ("name of domain about to create is already
 * taken"); this says it before anything is touched, and how to get out.
 * `madeHere`: the directory has Vagrant's machine records (.vagrant/machines).
 */
export function labNameFinding(
  spec: Pick<LabSpec, 'name'>,
  domains: readonly string[],
  madeHere: boolean,
): Finding {
  const prefix = libvirtNames(spec).domainPrefix;
  const taken = domains.filter((domain) => domain.startsWith(prefix));
  if (taken.length === 0 || madeHere) {
    return {
      check: 'lab name',
      status: 'ok',
      detail:
        taken.length === 0
          ? `no VMs named ${prefix}* in libvirt yet`
          : `${taken.length} VM(s) of this lab in libvirt, made from this directory`,
    };
  }
  return {
    check: 'lab name',
    status: 'fail',
    detail: `libvirt already has VMs named ${prefix}* (${taken.join(', ')}) that this directory did not make: a lab "${spec.name}" in another directory, or one whose directory was deleted`,
    fix: `Give this lab another name (name: in klab.yaml); or, if that lab's directory still exists, work there; if it is gone, "klab destroy --yes" here removes its VMs, snapshots and networks by name.`,
  };
}

export async function checkLabName(spec: LabSpec, dir: string): Promise<Finding> {
  return labNameFinding(
    spec,
    await libvirt.domains(),
    existsSync(path.join(dir, '.vagrant', 'machines')),
  );
}

/** GB free where libvirt keeps its images. */
export async function freeDiskGb(): Promise<number> {
  const disk = await statfs('/var/lib/libvirt').catch(() => statfs('/'));
  return Math.floor((Number(disk.bavail) * Number(disk.bsize)) / 1024 ** 3);
}

export async function checkResources(spec: LabSpec): Promise<Finding[]> {
  const needs = resourceNeeds(spec);
  const totalMb = Math.floor(os.totalmem() / 1024 / 1024);
  const freeMb = Math.floor(os.freemem() / 1024 / 1024);
  const findings: Finding[] = [];
  if (needs.memoryMb > totalMb) {
    findings.push({
      check: 'memory',
      status: 'fail',
      detail: `the lab needs ${needs.memoryMb} MB, the host has ${totalMb} MB`,
      fix: 'Lower nodes[].memory or use fewer VMs in klab.yaml.',
    });
  } else if (needs.memoryMb > freeMb) {
    findings.push({
      check: 'memory',
      status: 'warn',
      detail: `the lab needs ${needs.memoryMb} MB, ${freeMb} MB are free right now`,
      fix: 'Close other programs or lower nodes[].memory.',
    });
  } else {
    findings.push({
      check: 'memory',
      status: 'ok',
      detail: `${needs.memoryMb} MB needed, ${freeMb} MB free`,
    });
  }
  const freeGb = await freeDiskGb();
  const withoutCheckpoints = needs.diskGb - needs.checkpointGb;
  if (freeGb >= needs.diskGb) {
    findings.push({ check: 'disk', status: 'ok', detail: `${freeGb} GB free for libvirt images` });
  } else if (freeGb >= withoutCheckpoints) {
    findings.push({
      check: 'disk',
      status: 'warn',
      detail:
        `${freeGb} GB free for libvirt images: enough for the lab (${withoutCheckpoints} GB), ` +
        `not for a checkpoint after every step (${needs.checkpointGb} GB more)`,
      fix: 'klab keeps only the checkpoint after the last step; free space under /var/lib/libvirt/images for all of them.',
    });
  } else {
    findings.push({
      check: 'disk',
      status: freeGb >= withoutCheckpoints / 2 ? 'warn' : 'fail',
      detail: `${freeGb} GB free for libvirt images, the lab may need ${withoutCheckpoints} GB without checkpoints`,
      fix: 'Free space under /var/lib/libvirt/images, or use fewer or smaller VMs in klab.yaml.',
    });
  }
  return findings;
}

/** Which error a blocking finding makes, most specific first; the headline names that finding. */
const FINDING_CODES: readonly { code: ErrorCode; matches: (finding: Finding) => boolean }[] = [
  { code: 'KLAB_LAB_NAME_TAKEN', matches: (f) => f.check === 'lab name' },
  { code: 'KLAB_SUBNET_COLLISION', matches: (f) => f.check === 'lab subnets' },
  { code: 'KLAB_LIBVIRT_UNREACHABLE', matches: (f) => f.check === 'libvirtd' },
  { code: 'KLAB_NOT_ENOUGH_RESOURCES', matches: (f) => f.check === 'memory' || f.check === 'disk' },
  { code: 'KLAB_TOOL_MISSING', matches: () => true },
];

/** For create/up: fail fast, with every blocking finding at once. */
export function assertNoFailures(findings: readonly Finding[]): void {
  const failed = findings.filter((finding) => finding.status === 'fail');
  if (failed.length === 0) return;
  let code: ErrorCode = 'KLAB_TOOL_MISSING';
  let headline = failed[0] as Finding;
  for (const entry of FINDING_CODES) {
    const match = failed.find(entry.matches);
    if (match) {
      code = entry.code;
      headline = match;
      break;
    }
  }
  const more = failed.length - 1;
  throw new KlabError(
    code,
    `the host is not ready: ${headline.check}: ${headline.detail}${more > 0 ? ` (and ${more} more finding${more === 1 ? '' : 's'})` : ''}`,
    {
      details: failed.map((f) => `${f.check}: ${f.detail}${f.fix ? `\n    fix: ${f.fix}` : ''}`),
      hint: 'Fix the findings above ("klab doctor" lists every check), then run the command again.',
    },
  );
}
