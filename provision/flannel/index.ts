/**
 * x06 of the tutorial: the pod network. The network config goes into etcd once; flanneld
 * runs on every VM (the master too, or it cannot reach pod IPs) on the private interface,
 * and writes Docker's options (--bip/--mtu) before Docker starts.
 * The unit: provision/flannel/flanneld.service.ejs.
 */
import { GUEST } from '../../src/model/guest-paths.js';
import type { LabSpec, VmPlan } from '../../src/model/spec.js';
import { etcdEndpoints, firstEtcdMember } from '../../src/model/topology.js';
import { etcdctl } from '../lib/cluster.js';
import { commandOk, etcdKeyIs, etcdValue } from '../lib/probes.js';
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

/** The network config flanneld reads from etcd. */
export function renderFlannelConfig(spec: LabSpec): string {
  return JSON.stringify({
    Network: spec.network.podCidr,
    SubnetLen: 24,
    Backend: { Type: 'vxlan' },
  });
}

export function renderFlannelUnit(spec: LabSpec, vm: VmPlan): string {
  return renderTemplate('flannel', 'flanneld.service.ejs', {
    vm,
    paths: GUEST,
    etcdEndpoints: etcdEndpoints(spec),
    prefix: FLANNEL_PREFIX,
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
      content: renderFlannelUnit(ctx.spec, vm),
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
  ],
  async before(ctx) {
    await ensureNetworkConfig(ctx);
  },
});
