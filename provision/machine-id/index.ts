/**
 * Every VM gets its own /etc/machine-id. Cloned boxes can share one, and then DHCP
 * leases, journald and some cluster tools confuse the VMs with each other.
 */
import { randomBytes } from 'node:crypto';
import { KlabError } from '../../src/model/errors.js';
import type { Step, StepContext } from '../lib/step.js';

const VALID = /^[0-9a-f]{32}$/;

async function machineId(ctx: StepContext, vm: string): Promise<string> {
  const result = await ctx.host(vm).run(['cat', '/etc/machine-id'], { allowFailure: true });
  return result.exitCode === 0 ? result.stdout.trim() : '';
}

async function allMachineIds(ctx: StepContext): Promise<Map<string, string>> {
  const ids = await Promise.all(ctx.spec.vms.map((vm) => machineId(ctx, vm.name)));
  return new Map(ctx.spec.vms.map((vm, index) => [vm.name, ids[index] ?? '']));
}

/**
 * Names of VMs whose machine-id is missing, malformed or shared with a VM before them in
 * the lab's order. The first VM of a sharing group keeps its id: which VMs change never
 * depends on which VM's SSH call came first, and a node added later never changes the
 * id of the master it copies.
 */
export function vmsNeedingNewId(ids: Map<string, string>): string[] {
  const seen = new Set<string>();
  const needing: string[] = [];
  for (const [vm, id] of ids) {
    if (!VALID.test(id) || seen.has(id)) needing.push(vm);
    else seen.add(id);
  }
  return needing;
}

export const machineIdStep: Step = {
  id: 'machine-id',
  title: 'A unique machine-id on every VM',

  async check(ctx, vm) {
    return !vmsNeedingNewId(await allMachineIds(ctx)).includes(vm.name);
  },

  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    const id = randomBytes(16).toString('hex');
    await host.writeFile('/etc/machine-id', `${id}\n`, { sudo: true, mode: 0o444 });
    const dbus = await host.run(['test', '-d', '/var/lib/dbus'], { allowFailure: true });
    if (dbus.exitCode === 0) {
      await host.run(['ln', '-sf', '/etc/machine-id', '/var/lib/dbus/machine-id'], { sudo: true });
    }
  },

  async verify(ctx, vm) {
    const ids = await allMachineIds(ctx);
    if (vmsNeedingNewId(ids).includes(vm.name)) {
      throw new KlabError(
        'KLAB_STEP_FAILED',
        `${vm.name} has machine-id "${ids.get(vm.name) ?? ''}", which is missing or shared`,
        { vm: vm.name },
      );
    }
  },
};
