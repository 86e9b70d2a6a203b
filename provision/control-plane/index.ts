/**
 * x07 (master part): kube-apiserver, kube-controller-manager and kube-scheduler as systemd
 * units that survive reboots, with the secure port only, RBAC + Node authorization, bootstrap
 * tokens and encryption of Secrets at rest. The units: provision/control-plane/*.ejs.
 */
import { GUEST } from '../../src/model/guest-paths.js';
import type { LabSpec, VmPlan } from '../../src/model/spec.js';
import { apiserverEtcdEndpoints, isEtcdMember } from '../../src/model/topology.js';
import type { ClusterTuning } from '../../src/model/tuning.js';
import type { InstallProfile } from '../../src/stacks/install.js';
import { controlPlaneHealthy } from '../lib/probes.js';
import { journalHint, serviceStep } from '../lib/service-step.js';
import { renderTemplate } from '../lib/template.js';

export const CONTROL_PLANE_UNITS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];

export function renderApiserverUnit(spec: LabSpec, profile: InstallProfile, vm: VmPlan): string {
  return renderTemplate('control-plane', 'kube-apiserver.service.ejs', {
    spec,
    vm,
    paths: GUEST,
    etcdEndpoints: apiserverEtcdEndpoints(spec, vm),
    localEtcd: isEtcdMember(spec, vm),
    v11: profile.kubernetesMinor < 13,
  });
}

export function renderControllerManagerUnit(spec: LabSpec, tuning: ClusterTuning): string {
  return renderTemplate('control-plane', 'kube-controller-manager.service.ejs', {
    spec,
    tuning,
    paths: GUEST,
  });
}

export function renderSchedulerUnit(): string {
  return renderTemplate('control-plane', 'kube-scheduler.service.ejs', { paths: GUEST });
}

export const controlPlaneStep = serviceStep({
  id: 'control-plane',
  title: 'Control plane: kube-apiserver, controller-manager, scheduler',
  on: 'masters',
  units: CONTROL_PLANE_UNITS,
  files: (ctx, vm) => [
    unitFile('kube-apiserver', renderApiserverUnit(ctx.spec, ctx.profile, vm)),
    unitFile('kube-controller-manager', renderControllerManagerUnit(ctx.spec, ctx.tuning)),
    unitFile('kube-scheduler', renderSchedulerUnit()),
  ],
  probes: [controlPlaneHealthy()],
  hint: (vm) => journalHint(vm, ['kube-apiserver', 'kube-controller-manager'], 80),
  alive: apiserverStillStarting,
});

/**
 * The apiserver answers /healthz, and etcd is ok, but post-start hooks (the RBAC bootstrap
 * roles, the priority classes) are not done: it is writing its defaults into a slow etcd,
 * which on a starved host can take many minutes. Slow, not broken.
 */
export function apiserverStillStarting(problems: readonly string[]): boolean {
  return (
    problems.length > 0 &&
    problems.every(
      (problem) =>
        problem.startsWith('kube-apiserver /healthz:') &&
        /\[-\]poststarthook\//.test(problem) &&
        !/\[-\](etcd|ping|log)\b/.test(problem),
    )
  );
}

function unitFile(name: string, content: string) {
  return { path: `${GUEST.units}/${name}.service`, content, mode: 0o644 };
}
