/**
 * x06 of the tutorial: the pod network. The network config goes into etcd once; flanneld
 * runs on every VM (the master too, or it cannot reach pod IPs) on the private interface,
 * and writes Docker's options (--bip/--mtu) before Docker starts.
 * The unit: provision/flannel/flanneld.service.ejs.
 */
import { GUEST } from '../../src/model/guest-paths.js';
import { cidrOfAddress, isIpv4 } from '../../src/model/net.js';
import type { LabSpec, VmPlan } from '../../src/model/spec.js';
import { etcdEndpoints, firstEtcdMember } from '../../src/model/topology.js';
import type { ClusterTuning } from '../../src/model/tuning.js';
import type { InstallProfile } from '../../src/stacks/install.js';
import { etcdctl } from '../lib/cluster.js';
import { commandOk, etcdKeyIs, etcdValue, type Probe } from '../lib/probes.js';
import { serviceStep } from '../lib/service-step.js';
import type { StepContext } from '../lib/step.js';
import { renderTemplate } from '../lib/template.js';

export const FLANNEL_PREFIX = '/coreos.com/network';

/** The address a flannel lease carries pod traffic over ('' when the value is no lease). */
export function leasePublicIp(lease: string): string {
  try {
    return (JSON.parse(lease) as { PublicIP?: string }).PublicIP ?? '';
  } catch {
    return '';
  }
}
const KEY = `${FLANNEL_PREFIX}/config`;
export const FLANNEL_SUBNETS = `${FLANNEL_PREFIX}/subnets`;

/** Flannel's leases (key -> PublicIP) in etcd, in the API the stack's flannel uses. */
export async function flannelLeases(ctx: StepContext): Promise<Map<string, string>> {
  const member = firstEtcdMember(ctx.spec);
  const leases = new Map<string, string>();
  if (ctx.profile.flannelEtcdApi === 'v3') {
    const listed = await etcdctl(ctx, member, ['get', '--prefix', FLANNEL_SUBNETS], {
      allowFailure: true,
    });
    const lines = listed.stdout.split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const key = lines[i]?.trim();
      if (key?.startsWith(FLANNEL_SUBNETS)) leases.set(key, leasePublicIp(lines[i + 1] ?? ''));
    }
    return leases;
  }
  const listed = await etcdctl(ctx, member, ['ls', FLANNEL_SUBNETS], {
    allowFailure: true,
    api: 'v2',
  });
  for (const key of listed.stdout.split('\n').map((line) => line.trim())) {
    if (!key.startsWith(FLANNEL_SUBNETS)) continue;
    const value = await etcdctl(ctx, member, ['get', key], { allowFailure: true, api: 'v2' });
    leases.set(key, leasePublicIp(value.stdout));
  }
  return leases;
}

/** Deletes a flannel lease: flanneld on every VM drops its route, neighbour and FDB entry. */
export async function deleteLease(ctx: StepContext, key: string): Promise<void> {
  const member = firstEtcdMember(ctx.spec);
  if (ctx.profile.flannelEtcdApi === 'v3') await etcdctl(ctx, member, ['del', key]);
  else await etcdctl(ctx, member, ['rm', key], { api: 'v2' });
}

/**
 * The kernel route of docker0's subnet: FLANNEL_SUBNET=172.30.8.1/24 ->
 * { net: '172.30.8.0/24', src: '172.30.8.1' } (undefined: no such line).
 */
export function bridgeRoute(subnetEnv: string): { net: string; src: string } | undefined {
  const match = /^FLANNEL_SUBNET=([\d.]+)\/(\d{1,2})$/m.exec(subnetEnv);
  if (!match?.[1] || !match[2] || !isIpv4(match[1])) return undefined;
  const net = cidrOfAddress(match[1], Number(match[2]));
  return net ? { net, src: match[1] } : undefined;
}

/** What the VM says about its own pods' route: subnet.env, docker0's address, the routes. */
const OWN_POD_ROUTE_SCRIPT =
  'cat /run/flannel/subnet.env 2>/dev/null; echo ---; ip -4 -o addr show dev docker0 2>/dev/null; echo ---; ip -4 route show';

/**
 * Why this VM's own pods are out of reach (undefined: they are not, or docker0 is not on
 * flannel's subnet yet, which is the docker step's business). The route to docker0's
 * subnet must go to docker0. A flanneld that took another lease (its -iface changed) sees
 * this VM's old lease as another VM's and replaces that route with a vxlan one; when the old
 * lease comes back, the vxlan route goes and docker0's does not return by itself.
 */
export function ownPodRouteProblem(output: string): string | undefined {
  const [env = '', addr = '', routes = ''] = output.split(/^---$/m);
  const route = bridgeRoute(env);
  if (!route || !addr.includes(` ${route.src}/`)) return undefined;
  const own = routes
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith(`${route.net} `));
  if (own.some((line) => /\bdev docker0\b/.test(line))) return undefined;
  return `this VM's own pod subnet ${route.net} is routed ${own[0] ? `"${own[0]}"` : 'nowhere'}, not to docker0: its pods are out of reach (ip route replace ${route.net} dev docker0 src ${route.src})`;
}

export const ownPodsOnBridge: Probe = async (ctx, vm) => {
  const seen = await ctx.host(vm.name).run(['sh', '-c', OWN_POD_ROUTE_SCRIPT], {
    allowFailure: true,
  });
  const problem = ownPodRouteProblem(seen.stdout);
  return problem ? [problem] : [];
};

/** Puts docker0's route back where ownPodRouteProblem finds it taken (nothing otherwise). */
export async function restoreOwnPodRoute(ctx: StepContext, vm: VmPlan): Promise<boolean> {
  const host = ctx.host(vm.name);
  const seen = await host.run(['sh', '-c', OWN_POD_ROUTE_SCRIPT], { allowFailure: true });
  const [env = ''] = seen.stdout.split(/^---$/m);
  const route = bridgeRoute(env);
  if (!route || !ownPodRouteProblem(seen.stdout)) return false;
  await host.run(
    [
      'ip',
      'route',
      'replace',
      route.net,
      'dev',
      'docker0',
      'proto',
      'kernel',
      'scope',
      'link',
      'src',
      route.src,
    ],
    { sudo: true },
  );
  return true;
}

/** The network config flanneld reads from etcd. */
export function renderFlannelConfig(spec: LabSpec): string {
  return JSON.stringify({
    Network: spec.network.podCidr,
    SubnetLen: 24,
    Backend: { Type: 'vxlan' },
  });
}

/**
 * flannel's own default resync is 5 s. A longer one is set for the debian stack's flannel
 * only, whose --help lists the flag (checked on the VMs); 0.10 keeps its default.
 */
export function renderFlannelUnit(
  spec: LabSpec,
  vm: VmPlan,
  profile: Pick<InstallProfile, 'stack'>,
  tuning: Pick<ClusterTuning, 'flannelIptablesResyncS'>,
): string {
  const resync = tuning.flannelIptablesResyncS;
  return renderTemplate('flannel', 'flanneld.service.ejs', {
    vm,
    paths: GUEST,
    etcdEndpoints: etcdEndpoints(spec),
    prefix: FLANNEL_PREFIX,
    iptablesResyncS: profile.stack === 'debian' && resync !== 5 ? resync : undefined,
  });
}

/**
 * The network config in etcd, written when it is missing or different. flannel 0.10 keeps
 * it (and its leases) in etcd's v2 keyspace, which a v3 snapshot does not hold: an etcd
 * restore writes it again through this.
 */
export async function ensureNetworkConfig(ctx: StepContext): Promise<void> {
  if ((await etcdValue(ctx, KEY)) !== renderFlannelConfig(ctx.spec)) await writeNetworkConfig(ctx);
}

async function writeNetworkConfig(ctx: StepContext): Promise<void> {
  const member = firstEtcdMember(ctx.spec);
  const value = renderFlannelConfig(ctx.spec);
  if (ctx.profile.flannelEtcdApi === 'v3') await etcdctl(ctx, member, ['put', KEY, value]);
  // flannel 0.10 reads the v2 keyspace only ("100: Key not found" after a v3 write).
  else await etcdctl(ctx, member, ['set', KEY, value], { api: 'v2' });
}

export const flannelStep = serviceStep({
  id: 'flannel',
  title: 'flanneld pod network on every VM (config in etcd)',
  units: ['flanneld'],
  files: (ctx, vm) => [
    {
      path: `${GUEST.units}/flanneld.service`,
      content: renderFlannelUnit(ctx.spec, vm, ctx.profile, ctx.tuning),
      mode: 0o644,
    },
  ],
  requires: [etcdKeyIs(KEY, (ctx) => renderFlannelConfig(ctx.spec))],
  probes: [
    commandOk(
      ['cat', '/run/flannel/subnet.env', '/run/flannel/docker'],
      'no subnet lease yet (/run/flannel/subnet.env, /run/flannel/docker)',
    ),
    commandOk(['ip', 'link', 'show', 'flannel.1'], 'no flannel.1 vxlan interface'),
    ownPodsOnBridge,
  ],
  async before(ctx) {
    await ensureNetworkConfig(ctx);
  },
  async after(ctx, vm) {
    await restoreOwnPodRoute(ctx, vm);
  },
});
