/**
 * /etc/hosts on every VM names every lab VM by its private IP, and maps lab names to
 * nothing else: a `127.0.1.1 node1` line makes etcd and the apiserver advertise loopback,
 * and a management-network line would make them talk over the NAT network.
 */
import { KlabError } from '../../src/model/errors.js';
import type { Step } from '../lib/step.js';

export const BEGIN = '# BEGIN klab: lab VMs on the private network (managed by klab)';
export const END = '# END klab';

export interface HostsEntry {
  ip: string;
  name: string;
}

export function hostsEntries(spec: { vms: readonly HostsEntry[] }): HostsEntry[] {
  return spec.vms.map((vm) => ({ ip: vm.ip, name: vm.name }));
}

/** The new /etc/hosts: the klab block replaced, loopback lines for lab names dropped. */
export function renderHostsFile(current: string, entries: readonly HostsEntry[]): string {
  const names = new Set(entries.map((entry) => entry.name));
  const kept: string[] = [];
  let inBlock = false;
  for (const line of current.split('\n')) {
    if (line === BEGIN) {
      inBlock = true;
      continue;
    }
    if (inBlock) {
      if (line === END) inBlock = false;
      continue;
    }
    const fields = line.trim().split(/\s+/);
    const address = fields[0] ?? '';
    if (!line.trim().startsWith('#') && fields.length > 1) {
      // Any other mapping of a lab name (127.0.1.1 node1, or a management-network address
      // some guests add) would win over the block below: drop the name, keep the rest.
      const others = fields.slice(1).filter((name) => !names.has(name));
      if (others.length < fields.length - 1) {
        if (others.length > 0) kept.push(`${address}\t${others.join(' ')}`);
        continue;
      }
    }
    kept.push(line);
  }
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop();
  const block = [BEGIN, ...entries.map((entry) => `${entry.ip}\t${entry.name}`), END];
  return `${[...kept, '', ...block].join('\n')}\n`;
}

export const hostsFileStep: Step = {
  id: 'hosts-file',
  title: '/etc/hosts entries for every lab VM',
  coversLab: true,

  async check(ctx, vm) {
    const current = await ctx.host(vm.name).readFile('/etc/hosts');
    return renderHostsFile(current, hostsEntries(ctx.spec)) === current;
  },

  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    const current = await host.readFile('/etc/hosts');
    await host.writeFile('/etc/hosts', renderHostsFile(current, hostsEntries(ctx.spec)), {
      sudo: true,
      mode: 0o644,
    });
  },

  async verify(ctx, vm) {
    const host = ctx.host(vm.name);
    for (const entry of hostsEntries(ctx.spec)) {
      const result = await host.run(['getent', 'ahostsv4', entry.name], { allowFailure: true });
      const first = result.stdout.trim().split(/\s+/)[0];
      if (first !== entry.ip) {
        throw new KlabError(
          'KLAB_STEP_FAILED',
          `${vm.name} resolves ${entry.name} to ${first || 'nothing'}, expected ${entry.ip}`,
          {
            vm: vm.name,
            hint: `Look at /etc/hosts on ${vm.name}: klab ssh ${vm.name} -- cat /etc/hosts`,
          },
        );
      }
    }
  },
};
