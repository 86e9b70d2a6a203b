/**
 * x06 of the tutorial: the pod network. The network config goes into etcd once; flanneld
 * runs on every VM (the master too, or it cannot reach pod IPs) on the private interface,
 * and writes Docker's options (--bip/--mtu) before Docker starts.
 */
import type { VmPlan } from '../../src/model/spec.js';
import { FLANNEL_PREFIX, renderFlannelConfig, renderFlannelUnit } from '../../src/render/units.js';
import { GUEST } from '../../src/stacks/install.js';
import { etcdctl, firstEtcdMember, probeStep } from '../lib/cluster.js';
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
      path: `${GUEST.units}/flanneld.service`,
      content: renderFlannelUnit(ctx.spec, vm),
      mode: 0o644,
    },
  ];
}

const KEY = `${FLANNEL_PREFIX}/config`;

async function networkConfig(ctx: StepContext): Promise<string> {
  const member = firstEtcdMember(ctx.spec);
  const result =
    ctx.profile.flannelEtcdApi === 'v3'
      ? await etcdctl(ctx, member, ['get', KEY, '--print-value-only'], { allowFailure: true })
      : await etcdctl(ctx, member, ['get', KEY], { allowFailure: true, api: 'v2' });
  return result.exitCode === 0 ? result.stdout.trim() : '';
}

async function writeNetworkConfig(ctx: StepContext): Promise<void> {
  const member = firstEtcdMember(ctx.spec);
  const value = renderFlannelConfig(ctx.spec);
  if (ctx.profile.flannelEtcdApi === 'v3') await etcdctl(ctx, member, ['put', KEY, value]);
  // flannel 0.10 reads the v2 keyspace only ("100: Key not found" after a v3 write).
  else await etcdctl(ctx, member, ['set', KEY, value], { api: 'v2' });
}

export const flannelStep = probeStep({
  id: 'flannel',
  title: 'flanneld pod network on every VM (config in etcd)',
  async problems(ctx, vm) {
    const host = ctx.host(vm.name);
    const problems = (await changedFiles(host, files(ctx, vm))).map((f) => `${f.path} differs`);
    if ((await networkConfig(ctx)) !== renderFlannelConfig(ctx.spec)) {
      problems.push(`the network config in etcd (${KEY}) is not the lab's`);
    }
    if (!(await unitsActive(host, ['flanneld']))) problems.push('flanneld is not running');
    const env = await host.run(['cat', '/run/flannel/subnet.env', '/run/flannel/docker'], {
      allowFailure: true,
    });
    if (env.exitCode !== 0)
      problems.push('no subnet lease yet (/run/flannel/subnet.env, /run/flannel/docker)');
    const link = await host.run(['ip', 'link', 'show', 'flannel.1'], { allowFailure: true });
    if (link.exitCode !== 0) problems.push('no flannel.1 vxlan interface');
    return problems;
  },
  async apply(ctx, vm) {
    if ((await networkConfig(ctx)) !== renderFlannelConfig(ctx.spec)) await writeNetworkConfig(ctx);
    const host = ctx.host(vm.name);
    const written = await putFiles(host, files(ctx, vm));
    await startUnits(host, ['flanneld'], written.length > 0);
  },
  waits: true,
  hint: (vm) => `Look at flanneld's log: klab ssh ${vm.name} -- sudo journalctl -u flanneld -n 50`,
  diagnose: (ctx, vm) => journalTail(ctx.host(vm.name), 'flanneld'),
});
