/**
 * Snapshots treat the lab as one unit: every VM paused, every VM snapshotted, every VM
 * resumed; a reset reverts every VM (never a subset), steps each guest clock and waits
 * until the lab is healthy. Reverting one etcd member behind its peers corrupts etcd;
 * a reverted VM's clock is stale and breaks TLS.
 */
import { KlabError } from './errors.js';

export const CHECKPOINT_PREFIX = 'after-';
const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function checkpointName(stepId: string): string {
  return `${CHECKPOINT_PREFIX}${stepId}`;
}

export function isCheckpoint(name: string): boolean {
  return name.startsWith(CHECKPOINT_PREFIX);
}

/** Names learners type: short, safe for libvirt; after-* is reserved for checkpoints. */
export function validateSnapshotName(name: string, automatic = false): void {
  if (!NAME.test(name)) {
    throw new KlabError('KLAB_USAGE', `"${name}" is not a valid snapshot name`, {
      hint: 'Use lower-case letters, digits, ".", "_" and "-" (up to 63), starting with a letter or digit.',
    });
  }
  if (!automatic && isCheckpoint(name)) {
    throw new KlabError(
      'KLAB_USAGE',
      `snapshot names starting with "${CHECKPOINT_PREFIX}" are klab's checkpoints`,
      {
        hint: 'Pick another name; checkpoints are taken after each provisioning step by themselves.',
      },
    );
  }
}

export interface LabSnapshot {
  name: string;
  /** The provisioning step it follows (checkpoints), if any. */
  afterStep: string | undefined;
  /** Oldest creation time among the VMs' copies (ms). */
  createdAt: number;
  /** VMs that have it. */
  vms: string[];
  /** Bytes of saved machine state over every VM. */
  stateBytes: number;
}

/** Group per-VM snapshot lists into lab snapshots, newest first. */
export function labSnapshots(
  perVm: ReadonlyMap<string, readonly { name: string; createdAt: number; stateBytes: number }[]>,
): LabSnapshot[] {
  const byName = new Map<string, LabSnapshot>();
  for (const [vm, snaps] of perVm) {
    for (const snap of snaps) {
      const entry = byName.get(snap.name) ?? {
        name: snap.name,
        afterStep: isCheckpoint(snap.name) ? snap.name.slice(CHECKPOINT_PREFIX.length) : undefined,
        createdAt: snap.createdAt,
        vms: [],
        stateBytes: 0,
      };
      entry.vms.push(vm);
      entry.createdAt = Math.min(entry.createdAt, snap.createdAt);
      entry.stateBytes += snap.stateBytes;
      byName.set(snap.name, entry);
    }
  }
  return [...byName.values()].sort(
    (a, b) => b.createdAt - a.createdAt || a.name.localeCompare(b.name),
  );
}

/** The all-or-nothing rule: a reset needs the snapshot on every VM. */
export function assertComplete(
  snapshot: LabSnapshot | undefined,
  name: string,
  allVms: readonly string[],
): LabSnapshot {
  if (!snapshot) {
    throw new KlabError('KLAB_SNAPSHOT_MISSING', `the lab has no snapshot "${name}"`, {
      hint: 'See what there is with "klab snapshot list".',
    });
  }
  const missing = allVms.filter((vm) => !snapshot.vms.includes(vm));
  if (missing.length > 0) {
    throw new KlabError(
      'KLAB_SNAPSHOT_MISSING',
      `snapshot "${name}" exists on ${snapshot.vms.join(', ')} but not on ${missing.join(', ')}; klab only resets all VMs together`,
      {
        hint: 'Resetting only some VMs would leave etcd members out of step. Pick a snapshot every VM has ("klab snapshot list"), or delete this one.',
      },
    );
  }
  return snapshot;
}

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}
