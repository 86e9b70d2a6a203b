/** Vagrantfile.ejs -> Vagrantfile. Pure: data in, string out (golden-tested). */
import { readFileSync } from 'node:fs';
import ejs from 'ejs';
import type { HypervisorSettings } from '../model/hypervisor.js';
import { consoleLogPath, libvirtNames } from '../model/lab-paths.js';
import { netmask, parseCidr } from '../model/net.js';
import { packagePath } from '../model/package-root.js';
import type { LabSpec } from '../model/spec.js';
import { DEFAULT_CPU_SHARES, guestCpuShares, guestCpus } from '../model/tuning.js';
import { rubyString } from './ruby.js';

let template: string | undefined;

function loadTemplate(): string {
  template ??= readFileSync(packagePath('Vagrantfile.ejs'), 'utf8');
  return template;
}

/**
 * `boxVersion`: the version of the box to boot (a klab-built box, registered once per
 * build); undefined lets Vagrant take the newest it has.
 */
export function renderVagrantfile(
  spec: LabSpec,
  hypervisor: HypervisorSettings,
  box: string = spec.box,
  boxVersion?: string,
): string {
  const names = libvirtNames(spec);
  const subnet = parseCidr(spec.network.subnet);
  if (!subnet) throw new Error(`invalid subnet ${spec.network.subnet}`);
  const accelerator = hypervisor.driver === 'qemu' ? 'tcg' : 'kvm';
  const options = {
    strict: true,
    async: false,
    localsName: 'it',
    destructuredLocals: ['lab', 'hypervisor', 'network', 'vms', 'rb', 'consoleLogPath'],
  } satisfies ejs.Options & { async: false };
  return ejs.render(
    loadTemplate(),
    {
      lab: {
        name: spec.name,
        box,
        boxVersion,
        domainPrefix: names.domainPrefix,
        bootTimeout: spec.timeouts.boot,
      },
      hypervisor,
      network: {
        name: names.network,
        netmask: netmask(subnet),
        managementName: names.managementNetwork,
        managementSubnet: spec.network.managementSubnet,
      },
      vms: spec.vms.map((vm) => {
        const shares = guestCpuShares(vm, accelerator);
        return {
          ...vm,
          cpus: guestCpus(vm, accelerator),
          // Only a weight other than libvirt's default is written.
          ...(shares !== DEFAULT_CPU_SHARES ? { cpuShares: shares } : {}),
        };
      }),
      rb: rubyString,
      consoleLogPath,
    },
    options,
  ) as string;
}
