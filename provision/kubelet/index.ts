/**
 * x07 (node part): kubelet on every node. It joins through TLS bootstrapping: with only a
 * bootstrap token it asks for a client certificate (a CSR you can see with
 * `kubectl get csr`), which the controller manager approves and signs; it serves its own
 * API with the certificate klab issued. Done when the node is Ready.
 */
import type { VmPlan } from '../../src/model/spec.js';
import {
  KUBELET_CERT_DIR,
  renderKubeletConfig,
  renderKubeletUnit,
} from '../../src/render/units.js';
import { GUEST } from '../../src/stacks/install.js';
import { kubectl, placed, probeStep } from '../lib/cluster.js';
import {
  changedFiles,
  journalTail,
  type ManagedFile,
  putFiles,
  startUnits,
  unitsActive,
} from '../lib/guest.js';
import type { StepContext } from '../lib/step.js';

async function files(ctx: StepContext, vm: VmPlan): Promise<ManagedFile[]> {
  // Ubuntu's systemd-resolved stub (127.0.0.53) would make cluster DNS loop.
  const resolved = await ctx
    .host(vm.name)
    .run(['test', '-e', '/run/systemd/resolve/resolv.conf'], { allowFailure: true });
  const resolvConf =
    resolved.exitCode === 0 ? '/run/systemd/resolve/resolv.conf' : '/etc/resolv.conf';
  return [
    {
      path: `${GUEST.k8sDir}/kubelet-config.yaml`,
      content: renderKubeletConfig(ctx.spec, vm, { resolvConf }),
      mode: 0o644,
    },
    {
      path: `${GUEST.units}/kubelet.service`,
      content: renderKubeletUnit(ctx.profile, vm),
      mode: 0o644,
    },
  ];
}

/** The Ready condition of a node from `kubectl get node -o json`. */
export function nodeReady(json: string): { ready: boolean; reason: string } {
  const node = JSON.parse(json) as {
    status?: { conditions?: { type?: string; status?: string; message?: string }[] };
  };
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  return {
    ready: ready?.status === 'True',
    reason: ready ? (ready.message ?? `Ready=${ready.status}`) : 'no Ready condition yet',
  };
}

export const kubeletStep = probeStep({
  id: 'kubelet',
  title: 'kubelet on the nodes, joined by TLS bootstrap; nodes Ready',
  targets: (spec) => placed(spec, 'nodes'),
  async problems(ctx, vm) {
    const host = ctx.host(vm.name);
    const problems = (await changedFiles(host, await files(ctx, vm))).map(
      (f) => `${f.path} differs`,
    );
    if (!(await unitsActive(host, ['kubelet']))) return [...problems, 'kubelet is not running'];
    const cert = await host.run(['test', '-s', `${KUBELET_CERT_DIR}/kubelet-client-current.pem`], {
      sudo: true,
      allowFailure: true,
    });
    if (cert.exitCode !== 0) problems.push('no client certificate from TLS bootstrap yet');
    const node = await kubectl(ctx, ['get', 'node', vm.name, '-o', 'json'], { allowFailure: true });
    if (node.exitCode !== 0) return [...problems, `node ${vm.name} is not registered`];
    const ready = nodeReady(node.stdout);
    if (!ready.ready) problems.push(`node ${vm.name} is not Ready: ${ready.reason}`);
    return problems;
  },
  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    await host.run(['mkdir', '-p', '/var/lib/kubelet', KUBELET_CERT_DIR], { sudo: true });
    const written = await putFiles(host, await files(ctx, vm));
    await startUnits(host, ['kubelet'], written.length > 0);
  },
  waits: true,
  hint: (vm) =>
    `Look at kubelet's log (klab ssh ${vm.name} -- sudo journalctl -u kubelet -n 80) and at the node requests (klab ssh master -- kubectl get csr).`,
  diagnose: (ctx, vm) => journalTail(ctx.host(vm.name), 'kubelet'),
});
