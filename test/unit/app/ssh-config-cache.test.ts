import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rememberSshConfig } from '../../../src/app/ssh-config-cache.js';
import { FakeMachines, FakeVirt } from '../../helpers/fake-ports.js';

/** A Vagrant that counts ssh-config calls and hands out a new port after each boot. */
class CountingMachines extends FakeMachines {
  asked = 0;
  port = 2200;
  override async sshConfig(vm: string) {
    this.asked += 1;
    return { ...(await super.sshConfig(vm)), port: this.port };
  }
  override async up(vms: readonly string[], parallel: boolean) {
    await super.up(vms, parallel);
    this.port += 1;
  }
}

async function setup() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-sshcfg-'));
  const machines = new CountingMachines();
  const virt = new FakeVirt(['klab-t_master', 'klab-t_node1']);
  const cached = rememberSshConfig(machines, virt, {
    file: path.join(dir, 'ssh-config.json'),
    domain: (vm) => `klab-t_${vm}`,
  });
  return { machines, virt, cached, file: path.join(dir, 'ssh-config.json') };
}

describe('ssh-config remembered per lab', () => {
  it('asks Vagrant once per running VM, across commands (the file is shared)', async () => {
    const { machines, virt, cached, file } = await setup();
    expect((await cached.machines.sshConfig('master')).port).toBe(2200);
    expect((await cached.machines.sshConfig('master')).port).toBe(2200);
    await cached.machines.sshConfig('node1');
    expect(machines.asked).toBe(2);
    // The next klab command opens the same lab: its own wrapper reads the same file.
    const next = rememberSshConfig(machines, virt, { file, domain: (vm) => `klab-t_${vm}` });
    expect((await next.machines.sshConfig('node1')).port).toBe(2200);
    expect(machines.asked).toBe(2);
  });

  it('remembers every VM asked for at once (one command connects to all of them)', async () => {
    const { machines, virt, cached, file } = await setup();
    for (const vm of ['node2', 'node3', 'node4']) virt.addDomain(`klab-t_${vm}`);
    const vms = ['master', 'node1', 'node2', 'node3', 'node4'];
    await Promise.all(vms.map((vm) => cached.machines.sshConfig(vm)));
    const next = rememberSshConfig(machines, virt, { file, domain: (vm) => `klab-t_${vm}` });
    await Promise.all(vms.map((vm) => next.machines.sshConfig(vm)));
    expect(machines.asked).toBe(vms.length);
  });

  it('forgets on boot, halt, destroy and a snapshot revert', async () => {
    const { machines, virt, cached } = await setup();
    await cached.machines.sshConfig('master');
    await cached.machines.up(['master'], false, 1000);
    expect((await cached.machines.sshConfig('master')).port).toBe(2201);
    await cached.machines.halt();
    virt.states.set('klab-t_master', 'running');
    await cached.machines.sshConfig('master');
    await cached.virt.revertSnapshot('klab-t_master', 'after-etcd');
    expect(virt.calls).toContain('revert klab-t_master after-etcd');
    virt.states.set('klab-t_master', 'running');
    await cached.machines.sshConfig('master');
    await cached.machines.destroy();
    virt.states.set('klab-t_master', 'running');
    await cached.machines.sshConfig('master');
    expect(machines.asked).toBe(5);
  });

  it('a revert brings back the address saved with the snapshot; a VM unknown at the save is asked again', async () => {
    const { machines, virt, cached, file } = await setup();
    await cached.machines.sshConfig('master');
    await cached.virt.createSnapshot('klab-t_master', 'base', '');
    // node1 was not known when its part was saved.
    await cached.virt.createSnapshot('klab-t_node1', 'base', '');
    await cached.machines.up(['master', 'node1'], false, 1000);
    expect((await cached.machines.sshConfig('master')).port).toBe(2201);
    expect(machines.asked).toBe(2);
    // Another klab command (its own wrapper) resets the lab.
    const next = rememberSshConfig(machines, virt, { file, domain: (vm) => `klab-t_${vm}` });
    await next.virt.revertSnapshot('klab-t_master', 'base');
    await next.virt.revertSnapshot('klab-t_node1', 'base');
    expect(virt.calls).toContain('revert klab-t_node1 base');
    for (const domain of ['klab-t_master', 'klab-t_node1']) virt.states.set(domain, 'running');
    expect((await next.machines.sshConfig('master')).port).toBe(2200);
    expect(machines.asked).toBe(2);
    expect((await next.machines.sshConfig('node1')).port).toBe(2201);
    expect(machines.asked).toBe(3);
  });

  it('asks Vagrant when the VM does not run (it says why) or when asked for a fresh answer', async () => {
    const { machines, virt, cached } = await setup();
    await cached.machines.sshConfig('master');
    await cached.machines.sshConfig('master', { fresh: true });
    expect(machines.asked).toBe(2);
    virt.states.set('klab-t_master', 'shut off');
    await cached.machines.sshConfig('master');
    await cached.machines.sshConfig('master');
    expect(machines.asked).toBe(4);
  });

  it('leaves the rest of libvirt as it is', async () => {
    const { virt, cached } = await setup();
    expect(await cached.virt.domainState('klab-t_node1')).toBe('running');
    expect(await cached.virt.domains()).toEqual(await virt.domains());
  });
});
