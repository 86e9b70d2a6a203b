/**
 * x04 of the tutorial: the etcd cluster on the members named in klab.yaml (an odd count),
 * mutual TLS for clients and peers, Type=notify so dependants start once it serves.
 * The unit: provision/etcd/etcd.service.ejs.
 */
import { GUEST } from '../../src/model/guest-paths.js';
import type { LabSpec, VmPlan } from '../../src/model/spec.js';
import { etcdInitialCluster, etcdMembers } from '../../src/model/topology.js';
import type { ClusterTuning } from '../../src/model/tuning.js';
import type { InstallProfile } from '../../src/stacks/install.js';
import { etcdBinary } from '../lib/cluster.js';
import { etcdHealthy } from '../lib/probes.js';
import { serviceStep } from '../lib/service-step.js';
import { renderTemplate } from '../lib/template.js';

export function renderEtcdUnit(
  spec: LabSpec,
  profile: InstallProfile,
  vm: VmPlan,
  tuning: ClusterTuning,
): string {
  return renderTemplate('etcd', 'etcd.service.ejs', {
    spec,
    vm,
    tuning,
    paths: GUEST,
    etcdBin: etcdBinary(profile, 'etcd'),
    initialCluster: etcdInitialCluster(spec),
    // etcd 3.4 serves the v2 API only when asked; flannel 0.10 needs it.
    enableV2: profile.flannelEtcdApi === 'v2' && profile.etcd.kind === 'deb',
    // Debian's etcd 3.4.23 with its default logger (capnslog) has no zap logger, and a
    // linearizable read that times out (a starved member) logs through it and panics
    // (etcd-io/etcd#14402, fixed in 3.4.30). 3.3 has no --logger flag.
    zapLogger: profile.etcd.kind === 'deb',
  });
}

export const etcdStep = serviceStep({
  id: 'etcd',
  title: 'etcd cluster (TLS for clients and peers)',
  on: etcdMembers,
  units: ['etcd'],
  files: (ctx, vm) => [
    {
      path: `${GUEST.units}/etcd.service`,
      content: renderEtcdUnit(ctx.spec, ctx.profile, vm, ctx.tuning),
      mode: 0o644,
    },
  ],
  probes: [etcdHealthy()],
  async before(ctx, vm) {
    await ctx
      .host(vm.name)
      .run(['install', '-d', '-o', 'etcd', '-g', 'etcd', '-m', '0700', GUEST.etcdData], {
        sudo: true,
      });
  },
  // Members start together (the pipeline runs VMs in parallel): each waits for quorum.
});
