/**
 * Exactly one default route per VM, persisted with a boot-time unit. The tutorial warned
 * that service (ClusterIP) traffic fails without one; klab makes sure instead.
 */
import { KlabError } from '../../src/model/errors.js';
import type { LabSpec, VmPlan } from '../../src/model/spec.js';
import type { Step, StepContext } from '../lib/step.js';

export interface DefaultRoute {
  via: string;
  dev: string;
}

/** eth0 is the management network; its libvirt gateway (.1) routes out of the lab. */
export function desiredDefaultRoute(spec: LabSpec): DefaultRoute {
  return { via: spec.network.managementGateway, dev: 'eth0' };
}

export function parseDefaultRoutes(ipRouteOutput: string): DefaultRoute[] {
  const routes: DefaultRoute[] = [];
  for (const line of ipRouteOutput.split('\n')) {
    const match = /^default\s+via\s+(\S+)\s+dev\s+(\S+)/.exec(line.trim());
    if (match?.[1] && match[2]) routes.push({ via: match[1], dev: match[2] });
  }
  return routes;
}

/**
 * The lab-internal ranges (services, pods) and the private interface they are routed to,
 * so that traffic kube-proxy or flannel has not claimed yet never leaves the host.
 */
export interface InternalRoutes {
  cidrs: string[];
  dev: string;
}

export function desiredInternalRoutes(spec: LabSpec): InternalRoutes {
  return { cidrs: [spec.network.serviceCidr, spec.network.podCidr], dev: 'eth1' };
}

export function envFile(route: DefaultRoute, internal?: InternalRoutes): string {
  const lines = [
    '# Written by klab: the one default route this VM keeps,',
    '# and the lab-internal ranges that must never leave the lab.',
    `KLAB_GATEWAY=${route.via}`,
    `KLAB_DEVICE=${route.dev}`,
  ];
  if (internal) {
    lines.push(`KLAB_INTERNAL_CIDRS="${internal.cidrs.join(' ')}"`);
    lines.push(`KLAB_INTERNAL_DEVICE=${internal.dev}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Whether `ip -4 route show` lists each internal range on the private interface. */
export function internalRoutesPresent(ipRouteOutput: string, want: InternalRoutes): string[] {
  const routes = ipRouteOutput.split('\n').map((line) => line.trim());
  return want.cidrs.filter(
    (cidr) => !routes.some((line) => line.startsWith(`${cidr} dev ${want.dev}`)),
  );
}

export const DEFAULT_ROUTE_UNIT = 'klab-default-route.service';
const SCRIPT = '/usr/local/sbin/klab-default-route';
const UNIT = `/etc/systemd/system/${DEFAULT_ROUTE_UNIT}`;
const ENV = '/etc/klab/default-route.env';
/** Every file this step writes on a VM (the default-route lesson takes them away). */
export const DEFAULT_ROUTE_FILES: readonly string[] = [SCRIPT, UNIT, ENV];

async function currentRoutes(ctx: StepContext, vm: VmPlan): Promise<DefaultRoute[]> {
  const result = await ctx.host(vm.name).run(['ip', '-4', 'route', 'show', 'default']);
  return parseDefaultRoutes(result.stdout);
}

export function routeIsRight(routes: DefaultRoute[], want: DefaultRoute): boolean {
  return routes.length === 1 && routes[0]?.via === want.via && routes[0]?.dev === want.dev;
}

export const defaultRouteStep: Step = {
  id: 'default-route',
  title: 'Default route (exactly one per VM, kept across reboots)',
  // The address under it is leased by DHCP: a lease can run out while the lab is saved.
  live: true,

  async check(ctx, vm) {
    const host = ctx.host(vm.name);
    const want = desiredDefaultRoute(ctx.spec);
    if (!routeIsRight(await currentRoutes(ctx, vm), want)) return false;
    const env = await host.run(['cat', ENV], { allowFailure: true });
    if (env.exitCode !== 0 || env.stdout !== envFile(want, desiredInternalRoutes(ctx.spec)))
      return false;
    const enabled = await host.run(['systemctl', 'is-enabled', 'klab-default-route.service'], {
      allowFailure: true,
    });
    return enabled.stdout.trim() === 'enabled';
  },

  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    const want = desiredDefaultRoute(ctx.spec);
    await host.run(['mkdir', '-p', '/etc/klab'], { sudo: true });
    await host.writeFile(ENV, envFile(want, desiredInternalRoutes(ctx.spec)), {
      sudo: true,
      mode: 0o644,
    });
    await host.writeFile(SCRIPT, await ctx.provisionFile('default-route', 'klab-default-route'), {
      sudo: true,
      mode: 0o755,
    });
    await host.writeFile(
      UNIT,
      await ctx.provisionFile('default-route', 'klab-default-route.service'),
      { sudo: true, mode: 0o644 },
    );
    await host.run(['systemctl', 'daemon-reload'], { sudo: true });
    await host.run(['systemctl', 'enable', 'klab-default-route.service'], { sudo: true });
    await host.run(['systemctl', 'restart', 'klab-default-route.service'], { sudo: true });
  },

  async verify(ctx, vm) {
    const want = desiredDefaultRoute(ctx.spec);
    const routes = await currentRoutes(ctx, vm);
    if (!routeIsRight(routes, want)) {
      throw new KlabError(
        'KLAB_STEP_FAILED',
        `${vm.name} should have exactly one default route via ${want.via} dev ${want.dev}, has ${
          routes.length === 0 ? 'none' : routes.map((r) => `via ${r.via} dev ${r.dev}`).join(', ')
        }`,
        {
          vm: vm.name,
          hint: `See why with: klab ssh ${vm.name} -- sudo journalctl -u klab-default-route`,
        },
      );
    }
    const internal = desiredInternalRoutes(ctx.spec);
    const all = await ctx.host(vm.name).run(['ip', '-4', 'route', 'show']);
    const missing = internalRoutesPresent(all.stdout, internal);
    if (missing.length > 0) {
      throw new KlabError(
        'KLAB_STEP_FAILED',
        `${vm.name} does not route ${missing.join(', ')} into the private network (${internal.dev})`,
        {
          vm: vm.name,
          hint: `See why with: klab ssh ${vm.name} -- sudo journalctl -u klab-default-route`,
        },
      );
    }
  },
};
