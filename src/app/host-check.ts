/** Checks of the host against a lab spec. Pure functions; the data comes from main/doctor. */
import { cidrContains, cidrsOverlap, parseCidr } from '../model/net.js';
import type { LabSpec } from '../model/spec.js';

export interface HostInterfaceAddress {
  iface: string;
  address: string;
  /** CIDR of the interface's own network, e.g. 192.168.1.0/24 */
  cidr: string;
}

export interface SubnetCollision {
  setting:
    | 'network.subnet'
    | 'network.managementSubnet'
    | 'network.serviceCidr'
    | 'network.podCidr';
  subnet: string;
  iface: string;
  address: string;
}

/**
 * Lab networks that overlap a host interface's network. The lab's own libvirt bridges
 * (already created by an earlier run) are not collisions.
 */
export function findSubnetCollisions(
  spec: LabSpec,
  addresses: readonly HostInterfaceAddress[],
  ownBridges: readonly string[],
): SubnetCollision[] {
  const settings = [
    ['network.subnet', spec.network.subnet],
    ['network.managementSubnet', spec.network.managementSubnet],
    ['network.serviceCidr', spec.network.serviceCidr],
    ['network.podCidr', spec.network.podCidr],
  ] as const;
  const collisions: SubnetCollision[] = [];
  for (const [setting, subnet] of settings) {
    const lab = parseCidr(subnet);
    if (!lab) continue;
    for (const entry of addresses) {
      if (ownBridges.includes(entry.iface)) continue;
      if (entry.address.startsWith('127.')) continue;
      const hostNet = parseCidr(entry.cidr);
      if (cidrContains(lab, entry.address) || (hostNet && cidrsOverlap(lab, hostNet))) {
        collisions.push({ setting, subnet, iface: entry.iface, address: entry.address });
      }
    }
  }
  return collisions;
}

/** Node's os.networkInterfaces() shape -> IPv4 addresses with their networks. */
export function ipv4Addresses(
  interfaces: Record<
    string,
    { address: string; family: string | number; cidr: string | null }[] | undefined
  >,
): HostInterfaceAddress[] {
  const out: HostInterfaceAddress[] = [];
  for (const [iface, entries] of Object.entries(interfaces)) {
    for (const entry of entries ?? []) {
      if (entry.family !== 'IPv4' && entry.family !== 4) continue;
      const cidr = entry.cidr ? normaliseCidr(entry.cidr) : `${entry.address}/32`;
      out.push({ iface, address: entry.address, cidr });
    }
  }
  return out;
}

function normaliseCidr(cidr: string): string {
  const [ip, prefixText] = cidr.split('/');
  const prefix = Number(prefixText);
  if (!ip || !Number.isInteger(prefix) || prefix < 8 || prefix > 30) return `${ip}/32`;
  const value = ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
  const size = 2 ** (32 - prefix);
  const network = Math.floor(value / size) * size;
  const text = [24, 16, 8, 0].map((shift) => Math.floor(network / 2 ** shift) % 256).join('.');
  return `${text}/${prefix}`;
}

export interface ResourceNeeds {
  memoryMb: number;
  /** What a provisioned lab writes to disk, checkpoints included, in GB. */
  diskGb: number;
  /** Of that, the automatic checkpoints. */
  checkpointGb: number;
}

/** Checkpoints a lab holds: one per provisioning step (15) and one saved by hand. */
export const CHECKPOINTS_PER_LAB = 16;

/** Saved state of one checkpoint as a share of the guests' memory (measured, rounded up). */
export const CHECKPOINT_MEMORY_SHARE = 0.2;

/**
 * Which automatic checkpoints a new lab takes: one per step when the disk has room for
 * them, else only the one after the last step (said plainly), none when turned off.
 */
export type CheckpointMode = 'every-step' | 'last-step' | 'none';

export function checkpointMode(spec: LabSpec, freeGb: number): CheckpointMode {
  if (!spec.snapshots.automatic) return 'none';
  return freeGb >= resourceNeeds(spec).diskGb ? 'every-step' : 'last-step';
}

export function resourceNeeds(spec: LabSpec): ResourceNeeds {
  const memoryMb = spec.vms.reduce((sum, vm) => sum + vm.memory, 0);
  // A provisioned cluster writes ~4 GB per VM into its overlay, plus the box volume.
  const base = 4 * spec.vms.length + 2;
  // Each checkpoint saves what the guests use of their memory (free memory is zeroed first
  // and costs nothing, see app/guest-memory.ts): about a fifth of it, measured on the
  // provisioned default lab (docs/performance.md); qcow2 files also keep changed blocks.
  const checkpoints = spec.snapshots.automatic
    ? Math.ceil((memoryMb / 1024) * CHECKPOINTS_PER_LAB * CHECKPOINT_MEMORY_SHARE)
    : 0;
  return { memoryMb, diskGb: base + checkpoints, checkpointGb: checkpoints };
}
