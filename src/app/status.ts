/** klab status: each VM's state, address, default route and provisioning progress. */
import { existsSync } from 'node:fs';
import { desiredDefaultRoute, parseDefaultRoutes } from '../../provision/default-route/index.js';
import { provisioningSteps } from '../../provision/index.js';
import { type Lab, type LabRequest, openLab } from './lab.js';
import { connectAll } from './session.js';

export interface VmStatus {
  name: string;
  state: string;
  ip: string;
  defaultRoute: string;
  /** The one default route klab wants (via the management gateway), and nothing else. */
  routeOk: boolean;
  steps: string;
  stepsDone: number;
  stepsTotal: number;
}

export async function labStatus(request: LabRequest): Promise<VmStatus[]> {
  const lab = await openLab(request);
  const states = existsSync(lab.paths.vagrantfile)
    ? await lab.vagrant.status()
    : new Map<string, string>();
  const steps = provisioningSteps(lab.spec);
  const want = desiredDefaultRoute(lab.spec);
  return Promise.all(
    lab.spec.vms.map(async (vm): Promise<VmStatus> => {
      const state = states.get(vm.name) ?? 'not_created';
      // Only the steps that run on this VM (etcd on members, kubelet on nodes, ...).
      const mine = steps.filter((step) =>
        (step.targets ? step.targets(lab.spec) : lab.spec.vms).some((t) => t.name === vm.name),
      );
      const done = mine.filter((step) => lab.state.steps[vm.name]?.[step.id]).length;
      let route = '-';
      if (state === 'running') {
        route = await routeOf(lab, vm.name).catch(
          (error: unknown) => `unreachable (${(error as Error).message})`,
        );
        if (route === `via ${want.via} dev ${want.dev}`) route += ' (ok)';
      }
      return {
        name: vm.name,
        state,
        ip: vm.ip,
        defaultRoute: route,
        routeOk: route.endsWith(' (ok)'),
        steps: `${done}/${mine.length}`,
        stepsDone: done,
        stepsTotal: mine.length,
      };
    }),
  );
}

async function routeOf(lab: Lab, vm: string): Promise<string> {
  const pool = await connectAll(lab.vagrant, [vm], lab.sink, 20_000);
  try {
    const result = await pool.get(vm).run(['ip', '-4', 'route', 'show', 'default']);
    const routes = parseDefaultRoutes(result.stdout);
    if (routes.length === 0) return 'none';
    return routes.map((route) => `via ${route.via} dev ${route.dev}`).join(', ');
  } finally {
    await pool.closeAll();
  }
}
