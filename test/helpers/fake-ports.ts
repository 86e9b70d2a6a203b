/** The outside world in memory: fakes of the Machines (vagrant) and Virt (libvirt) ports. */
import { KlabError } from '../../src/model/errors.js';
import type { BoxEntry, Machines, ProcessResult, SshConfig, Virt } from '../../src/model/ports.js';

/** libvirt in memory: domains with states and snapshots, networks, volumes; calls recorded. */
export class FakeVirt implements Virt {
  readonly calls: string[] = [];
  readonly states = new Map<string, string>();
  readonly snaps = new Map<string, Set<string>>();
  readonly nets = new Set<string>();
  readonly vols = new Set<string>();
  /** Snapshots libvirt lists whose disk state is gone (a damaged qcow2). */
  readonly damaged = new Set<string>();
  failCreateOn: string | undefined;
  /** domain -> how many reverts of it fail before one works (a busy or broken domain). */
  readonly failRevert = new Map<string, number>();
  revertKeepsShutOff = false;

  constructor(domains: readonly string[] = [], state = 'running') {
    for (const domain of domains) this.addDomain(domain, state);
  }

  addDomain(domain: string, state = 'running'): void {
    this.states.set(domain, state);
    this.snaps.set(domain, new Set());
  }

  async reachable() {
    return { ok: true, detail: 'fake libvirt' };
  }
  async domains() {
    return [...this.states.keys()];
  }
  async domainState(domain: string) {
    return this.states.get(domain);
  }
  async networks() {
    return [...this.nets];
  }
  async networkBridge() {
    return undefined;
  }
  async volumes() {
    return [...this.vols];
  }
  async snapshots(domain: string) {
    return [...(this.snaps.get(domain) ?? [])];
  }
  async createSnapshot(domain: string, name: string) {
    this.calls.push(`snapshot ${domain} ${name}`);
    if (domain === this.failCreateOn) {
      throw new KlabError('KLAB_LIBVIRT_FAILED', `virsh snapshot-create-as ${domain} failed`, {
        outputTail: 'error: No space left on device',
      });
    }
    this.snaps.get(domain)?.add(name);
  }
  async revertSnapshot(domain: string, name: string) {
    this.calls.push(`revert ${domain} ${name}`);
    const failures = this.failRevert.get(domain) ?? 0;
    if (failures > 0) {
      this.failRevert.set(domain, failures - 1);
      throw new KlabError('KLAB_LIBVIRT_FAILED', `virsh snapshot-revert ${domain} failed`, {
        outputTail: 'error: Timed out during operation: cannot acquire state change lock',
      });
    }
    this.states.set(domain, this.revertKeepsShutOff ? 'shut off' : 'paused');
  }
  async deleteSnapshot(domain: string, name: string) {
    this.calls.push(`delete ${domain} ${name}`);
    this.snaps.get(domain)?.delete(name);
  }
  /** "domain/name" -> creation time (ms since the epoch, like the real port); 0 when not set. */
  readonly createdAt = new Map<string, number>();
  async snapshotCreationTimes(domain: string) {
    const times = new Map<string, number>();
    for (const name of this.snaps.get(domain) ?? []) {
      times.set(name, this.createdAt.get(`${domain}/${name}`) ?? 0);
    }
    return times;
  }
  async snapshotStateSizes(domain: string) {
    const sizes = new Map<string, number>();
    for (const name of this.snaps.get(domain) ?? []) {
      if (!this.damaged.has(`${domain}/${name}`)) sizes.set(name, 1024);
    }
    return sizes;
  }
  async suspend(domain: string) {
    this.calls.push(`suspend ${domain}`);
    this.states.set(domain, 'paused');
  }
  async resume(domain: string) {
    this.calls.push(`resume ${domain}`);
    this.states.set(domain, 'running');
  }
  async setGuestTimeNow(_domain: string) {
    return true;
  }
  async removeDomain(domain: string) {
    this.calls.push(`remove-domain ${domain}`);
    this.states.delete(domain);
    this.snaps.delete(domain);
  }
  async removeNetwork(network: string) {
    this.calls.push(`remove-network ${network}`);
    this.nets.delete(network);
  }
  async removeVolume(volume: string) {
    this.calls.push(`remove-volume ${volume}`);
    this.vols.delete(volume);
  }
}

/** Vagrant in memory: VM states, installed boxes, a box download that may fail. */
export class FakeMachines implements Machines {
  readonly calls: string[] = [];
  readonly vmStates = new Map<string, string>();
  boxes: BoxEntry[] = [];
  /** What a download (`vagrant box add NAME`) answers: a failure = no Vagrant Cloud from here. */
  boxAddResult: Partial<ProcessResult> = { exitCode: 0 };
  /** Called by destroy(): what vagrant destroy does to libvirt. */
  onDestroy: () => void = () => {};

  async status() {
    return new Map(this.vmStates);
  }
  async sshConfig(vm: string): Promise<SshConfig> {
    return {
      host: vm,
      hostName: '127.0.0.1',
      user: 'vagrant',
      port: 22,
      identityFile: '/dev/null',
    };
  }
  async up(vms: readonly string[], parallel: boolean) {
    this.calls.push(`up ${vms.join(' ')}${parallel ? ' --parallel' : ''}`);
    for (const vm of vms) this.vmStates.set(vm, 'running');
  }
  async halt(vms: readonly string[] = []) {
    this.calls.push(`halt ${vms.join(' ')}`.trim());
    for (const vm of this.vmStates.keys()) this.vmStates.set(vm, 'shutoff');
  }
  async destroy() {
    this.calls.push('destroy');
    this.vmStates.clear();
    this.onDestroy();
  }
  async boxList() {
    return this.boxes;
  }
  async boxAdd(name: string, source: string): Promise<ProcessResult> {
    this.calls.push(`box add ${name} ${source}`);
    const result = {
      command: ['vagrant', 'box', 'add', name],
      exitCode: 0,
      stdout: '',
      stderr: '',
      timedOut: false,
      notFound: false,
      // Adding a local file always works; only downloads (source = name) may fail.
      ...(source === name ? this.boxAddResult : {}),
    };
    if (result.exitCode === 0) this.boxes.push({ name, provider: 'libvirt', version: '0' });
    return result;
  }
}
