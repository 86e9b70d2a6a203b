/** virsh, for what Vagrant does not show: leftovers, networks, volumes, snapshots. */
import { KlabError, tail } from '../model/errors.js';
import type { Virt } from '../model/ports.js';
import { runProcess } from './process.js';

const URI = 'qemu:///system';

/** virsh's words when it cannot talk to libvirtd at all (not "no such domain"). */
export function libvirtUnreachable(stderr: string): boolean {
  return /failed to connect to the hypervisor|Failed to connect socket|libvirt-sock/i.test(stderr);
}

async function virsh(args: readonly string[], allowFailure = false) {
  const result = await runProcess(['virsh', '-c', URI, ...args], { timeoutMs: 120_000 });
  if (result.notFound) {
    throw new KlabError('KLAB_TOOL_MISSING', 'virsh is not installed', {
      hint: 'Install libvirt: sudo apt-get install libvirt-daemon-system libvirt-clients qemu-system-x86',
    });
  }
  // An unreachable libvirtd is never an answer ("no snapshots", "no domain"): say so.
  if (result.exitCode !== 0 && libvirtUnreachable(result.stderr) && args[0] !== 'version') {
    throw new KlabError('KLAB_LIBVIRT_UNREACHABLE', `libvirt (${URI}) cannot be reached`, {
      command: ['virsh', ...args],
      outputTail: tail(result.stderr, 3),
      hint: 'Start it: sudo systemctl start libvirtd (without systemd: sudo libvirtd -d; sudo virtlogd -d), then run the command again.',
    });
  }
  if (result.exitCode !== 0 && !allowFailure) {
    throw new KlabError('KLAB_LIBVIRT_FAILED', `virsh ${args.join(' ')} failed`, {
      command: ['virsh', ...args],
      outputTail: tail(`${result.stdout}\n${result.stderr}`),
    });
  }
  return result;
}

function names(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

/** `virsh vol-list` table -> volume names. */
export function parseVolumeList(text: string): string[] {
  return text
    .split('\n')
    .slice(2)
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name.length > 0);
}

export function parseNetInfoBridge(text: string): string | undefined {
  return /^Bridge:\s+(\S+)/m.exec(text)?.[1];
}

/**
 * `virsh snapshot-list DOMAIN` table -> snapshot name -> creation time (ms since the epoch):
 *  Name          Creation Time               State
 * ----------------------------------------------------
 *  after-etcd    2026-12-05 14:53:45 +0000   running
 */
export function parseSnapshotTable(text: string): Map<string, number> {
  const times = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^\s*(\S+)\s+(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) ([+-]\d\d)(\d\d)\s/.exec(line);
    if (!match) continue;
    const [, name, day, time, zoneHours, zoneMinutes] = match;
    const ms = Date.parse(`${day}T${time}${zoneHours}:${zoneMinutes}`);
    if (name && !Number.isNaN(ms)) times.set(name, ms);
  }
  return times;
}

/** The Virt port over virsh (qemu:///system). */
export const libvirt: Virt = {
  async reachable(): Promise<{ ok: boolean; detail: string }> {
    const result = await virsh(['version'], true);
    return {
      ok: result.exitCode === 0,
      detail: result.exitCode === 0 ? tail(result.stdout, 1) : tail(result.stderr, 2),
    };
  },
  async domains(): Promise<string[]> {
    return names((await virsh(['list', '--all', '--name'])).stdout);
  },
  async domainState(domain: string): Promise<string | undefined> {
    const result = await virsh(['domstate', domain], true);
    return result.exitCode === 0 ? result.stdout.trim() : undefined;
  },
  async networks(): Promise<string[]> {
    return names((await virsh(['net-list', '--all', '--name'])).stdout);
  },
  async networkBridge(network: string): Promise<string | undefined> {
    const result = await virsh(['net-info', network], true);
    return result.exitCode === 0 ? parseNetInfoBridge(result.stdout) : undefined;
  },
  async volumes(pool = 'default'): Promise<string[]> {
    const result = await virsh(['vol-list', pool], true);
    return result.exitCode === 0 ? parseVolumeList(result.stdout) : [];
  },
  async snapshots(domain: string): Promise<string[]> {
    const result = await virsh(['snapshot-list', domain, '--name'], true);
    return result.exitCode === 0 ? names(result.stdout) : [];
  },
  async deleteSnapshot(domain: string, snapshot: string): Promise<void> {
    await virsh(['snapshot-delete', domain, snapshot]);
  },
  async suspend(domain: string): Promise<void> {
    await virsh(['suspend', domain]);
  },
  async resume(domain: string): Promise<void> {
    await virsh(['resume', domain]);
  },
  /** An internal snapshot: disks, plus memory when the domain is running or paused. */
  async createSnapshot(domain: string, name: string, description: string): Promise<void> {
    await virsh(['snapshot-create-as', domain, name, description, '--atomic']);
  },
  /** Revert and leave the domain paused (if the snapshot held a running machine). */
  async revertSnapshot(domain: string, name: string): Promise<void> {
    await virsh(['snapshot-revert', domain, name, '--paused']);
  },
  /** One `virsh snapshot-list` for the whole domain (not one snapshot-dumpxml per snapshot). */
  async snapshotCreationTimes(domain: string): Promise<Map<string, number>> {
    const result = await virsh(['snapshot-list', domain], true);
    return result.exitCode === 0 ? parseSnapshotTable(result.stdout) : new Map();
  },
  /**
   * Bytes of saved machine state per internal snapshot of a domain's disk (qemu-img);
   * undefined when the disk could not be read (then nothing is known either way).
   */
  async snapshotStateSizes(domain: string): Promise<Map<string, number> | undefined> {
    const sizes = new Map<string, number>();
    const disks = await virsh(['domblklist', domain, '--details'], true);
    const file = disks.stdout
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .find((cols) => cols[0] === 'file' && cols[1] === 'disk')?.[3];
    if (!file) return undefined;
    const info = await runProcess(['qemu-img', 'info', '--force-share', '--output=json', file], {
      timeoutMs: 60_000,
    });
    if (info.exitCode !== 0) return undefined;
    const parsed = JSON.parse(info.stdout) as {
      snapshots?: { name: string; 'vm-state-size': number }[];
    };
    for (const snap of parsed.snapshots ?? []) sizes.set(snap.name, snap['vm-state-size']);
    return sizes;
  },
  /**
   * Sets the guest clock to the host's through QEMU's guest agent. False when the domain
   * has no agent channel or the agent does not answer (older labs, a guest still booting).
   */
  async setGuestTimeNow(domain: string): Promise<boolean> {
    const result = await runProcess(['virsh', '-c', URI, 'domtime', domain, '--now'], {
      timeoutMs: 20_000,
    });
    return result.exitCode === 0;
  },
  /** Remove a domain klab owns, whatever state it is in (for leftovers of interrupted runs). */
  async removeDomain(domain: string): Promise<void> {
    for (const snapshot of await libvirt.snapshots(domain)) {
      await virsh(['snapshot-delete', domain, snapshot, '--metadata'], true);
    }
    await virsh(['destroy', domain], true);
    await virsh(['undefine', domain, '--remove-all-storage', '--nvram'], true);
    await virsh(['undefine', domain, '--remove-all-storage'], true);
  },
  async removeNetwork(network: string): Promise<void> {
    await virsh(['net-destroy', network], true);
    await virsh(['net-undefine', network], true);
  },
  async removeVolume(volume: string, pool = 'default'): Promise<void> {
    await virsh(['vol-delete', '--pool', pool, volume], true);
  },
};
