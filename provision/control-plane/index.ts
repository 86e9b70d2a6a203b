/**
 * x07 (master part): kube-apiserver, kube-controller-manager and kube-scheduler as systemd
 * units that survive reboots, with the secure port only, RBAC + Node authorization, bootstrap
 * tokens and encryption of Secrets at rest.
 */
import type { VmPlan } from '../../src/model/spec.js';
import {
  renderApiserverUnit,
  renderControllerManagerUnit,
  renderSchedulerUnit,
} from '../../src/render/units.js';
import { GUEST } from '../../src/stacks/install.js';
import { ADMIN_KUBECONFIG, placed, probeStep } from '../lib/cluster.js';
import {
  changedFiles,
  journalTail,
  type ManagedFile,
  putFiles,
  startUnits,
  unitsActive,
} from '../lib/guest.js';
import type { StepContext } from '../lib/step.js';

export const CONTROL_PLANE_UNITS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];

function files(ctx: StepContext, vm: VmPlan): ManagedFile[] {
  const unit = (name: string, content: string): ManagedFile => ({
    path: `${GUEST.units}/${name}.service`,
    content,
    mode: 0o644,
  });
  return [
    unit('kube-apiserver', renderApiserverUnit(ctx.spec, ctx.profile, vm)),
    unit('kube-controller-manager', renderControllerManagerUnit(ctx.spec, ctx.tuning)),
    unit('kube-scheduler', renderSchedulerUnit()),
  ];
}

/** Unhealthy components from `kubectl get componentstatuses` (empty: all healthy). */
export function unhealthyComponents(json: string): string[] {
  const parsed = JSON.parse(json) as {
    items?: {
      metadata?: { name?: string };
      conditions?: { type?: string; status?: string; message?: string }[];
    }[];
  };
  const items = parsed.items ?? [];
  if (items.length === 0) return ['no componentstatuses'];
  return items
    .filter((item) => !item.conditions?.some((c) => c.type === 'Healthy' && c.status === 'True'))
    .map(
      (item) => `${item.metadata?.name ?? '?'}: ${item.conditions?.[0]?.message ?? 'unhealthy'}`,
    );
}

export const controlPlaneStep = probeStep({
  id: 'control-plane',
  title: 'Control plane: kube-apiserver, controller-manager, scheduler',
  targets: (spec) => placed(spec, 'masters'),
  async problems(ctx, vm) {
    const host = ctx.host(vm.name);
    const problems = (await changedFiles(host, files(ctx, vm))).map((f) => `${f.path} differs`);
    for (const unit of CONTROL_PLANE_UNITS) {
      if (!(await unitsActive(host, [unit]))) problems.push(`${unit} is not running`);
    }
    if (problems.length > 0) return problems;
    const kubectl = [
      `${GUEST.bin}/kubectl`,
      `--kubeconfig=${ADMIN_KUBECONFIG}`,
      '--request-timeout=20s',
    ];
    const ready = await host.run([...kubectl, 'get', '--raw', '/healthz'], {
      sudo: true,
      allowFailure: true,
    });
    if (ready.stdout.trim() !== 'ok') {
      return [`kube-apiserver /healthz: ${(ready.stdout + ready.stderr).trim() || 'no answer'}`];
    }
    const cs = await host.run([...kubectl, 'get', 'componentstatuses', '-o', 'json'], {
      sudo: true,
      allowFailure: true,
    });
    if (cs.exitCode !== 0) return [`componentstatuses: ${cs.stderr.trim()}`];
    return unhealthyComponents(cs.stdout);
  },
  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    const written = await putFiles(host, files(ctx, vm));
    await startUnits(host, CONTROL_PLANE_UNITS, written.length > 0);
  },
  waits: true,
  hint: (vm) =>
    `Look at the logs: klab ssh ${vm.name} -- sudo journalctl -u kube-apiserver -u kube-controller-manager -n 80`,
  diagnose: (ctx, vm) => journalTail(ctx.host(vm.name), 'kube-apiserver'),
});
