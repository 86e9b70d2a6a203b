/**
 * kube-proxy on every VM (the master too, so Service ClusterIPs answer from every VM), in
 * iptables mode, bound to the private address.
 */
import type { VmPlan } from '../../src/model/spec.js';
import { renderKubeProxyConfig, renderKubeProxyUnit } from '../../src/render/units.js';
import { GUEST } from '../../src/stacks/install.js';
import { probeStep } from '../lib/cluster.js';
import {
  changedFiles,
  journalTail,
  type ManagedFile,
  putFiles,
  startUnits,
  unitsActive,
} from '../lib/guest.js';
import type { StepContext } from '../lib/step.js';

function files(ctx: StepContext, vm: VmPlan): ManagedFile[] {
  return [
    {
      path: `${GUEST.k8sDir}/kube-proxy-config.yaml`,
      content: renderKubeProxyConfig(ctx.spec, vm),
      mode: 0o644,
    },
    { path: `${GUEST.units}/kube-proxy.service`, content: renderKubeProxyUnit(), mode: 0o644 },
  ];
}

export const kubeProxyStep = probeStep({
  id: 'kube-proxy',
  title: 'kube-proxy on every VM (Service ClusterIPs via iptables)',
  async problems(ctx, vm) {
    const host = ctx.host(vm.name);
    const problems = (await changedFiles(host, files(ctx, vm))).map((f) => `${f.path} differs`);
    if (!(await unitsActive(host, ['kube-proxy'])))
      return [...problems, 'kube-proxy is not running'];
    const healthz = await host.run(
      ['curl', '-fsS', '--max-time', '5', `http://${vm.ip}:10256/healthz`],
      {
        allowFailure: true,
      },
    );
    if (healthz.exitCode !== 0)
      problems.push(`kube-proxy healthz: ${healthz.stderr.trim() || 'no answer'}`);
    const chain = await host.run(['iptables', '-t', 'nat', '-S', 'KUBE-SERVICES'], {
      sudo: true,
      allowFailure: true,
    });
    if (chain.exitCode !== 0) problems.push('no KUBE-SERVICES chain in the nat table yet');
    return problems;
  },
  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    const written = await putFiles(host, files(ctx, vm));
    await startUnits(host, ['kube-proxy'], written.length > 0);
  },
  waits: true,
  hint: (vm) =>
    `Look at kube-proxy's log: klab ssh ${vm.name} -- sudo journalctl -u kube-proxy -n 50`,
  diagnose: (ctx, vm) => journalTail(ctx.host(vm.name), 'kube-proxy'),
});
