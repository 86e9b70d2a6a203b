/**
 * Docker on the nodes, started after flanneld with flannel's subnet for docker0, so every
 * pod IP is routable across VMs; the FORWARD policy is put back to ACCEPT after each start.
 */
import type { VmPlan } from '../../src/model/spec.js';
import { renderDockerDaemonJson, renderDockerDropIn } from '../../src/render/units.js';
import { GUEST } from '../../src/stacks/install.js';
import { placed, probeStep } from '../lib/cluster.js';
import {
  changedFiles,
  journalTail,
  type ManagedFile,
  putFiles,
  startUnits,
  unitsActive,
} from '../lib/guest.js';
import type { StepContext } from '../lib/step.js';

function files(ctx: StepContext): ManagedFile[] {
  return [
    {
      path: `${GUEST.units}/docker.service.d/klab.conf`,
      content: renderDockerDropIn(ctx.profile),
      mode: 0o644,
    },
    { path: '/etc/docker/daemon.json', content: renderDockerDaemonJson(), mode: 0o644 },
  ];
}

/** FLANNEL_SUBNET=172.30.5.1/24 -> 172.30.5.1/24 */
export function flannelSubnet(subnetEnv: string): string | undefined {
  return /^FLANNEL_SUBNET=(\S+)$/m.exec(subnetEnv)?.[1];
}

export const dockerStep = probeStep({
  id: 'docker',
  title: "Docker on the nodes, on flannel's subnet",
  targets: (spec) => placed(spec, 'nodes'),
  async problems(ctx, vm: VmPlan) {
    const host = ctx.host(vm.name);
    const problems = (await changedFiles(host, files(ctx))).map((f) => `${f.path} differs`);
    if (!(await unitsActive(host, ['docker']))) return [...problems, 'docker is not running'];
    const env = await host.run(['cat', '/run/flannel/subnet.env'], { allowFailure: true });
    const subnet = flannelSubnet(env.stdout);
    const addr = await host.run(['ip', '-4', '-o', 'addr', 'show', 'docker0'], {
      allowFailure: true,
    });
    if (!subnet || !addr.stdout.includes(` ${subnet} `)) {
      problems.push(`docker0 is not on flannel's subnet ${subnet ?? '(none)'}`);
    }
    const forward = await host.run(['iptables', '-S', 'FORWARD'], {
      sudo: true,
      allowFailure: true,
    });
    if (!forward.stdout.includes('-P FORWARD ACCEPT'))
      problems.push('the FORWARD policy is not ACCEPT');
    return problems;
  },
  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    await putFiles(host, files(ctx));
    // Always a restart: docker0 may still have the address of a start before flannel.
    await startUnits(host, ['docker'], true);
  },
  waits: true,
  hint: (vm) => `Look at Docker's log: klab ssh ${vm.name} -- sudo journalctl -u docker -n 50`,
  diagnose: (ctx, vm) => journalTail(ctx.host(vm.name), 'docker'),
});
