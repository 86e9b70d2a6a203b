/**
 * x04 of the tutorial: the etcd cluster on the members named in klab.yaml (an odd count),
 * mutual TLS for clients and peers, Type=notify so dependants start once it serves.
 */

import type { VmPlan } from '../../src/model/spec.js';
import { etcdMembers, renderEtcdUnit } from '../../src/render/units.js';
import { GUEST } from '../../src/stacks/install.js';
import { etcdctl, probeStep } from '../lib/cluster.js';
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
      path: `${GUEST.units}/etcd.service`,
      content: renderEtcdUnit(ctx.spec, ctx.profile, vm, ctx.tuning),
      mode: 0o644,
    },
  ];
}

export const etcdStep = probeStep({
  id: 'etcd',
  title: 'etcd cluster (TLS for clients and peers)',
  targets: etcdMembers,
  async problems(ctx, vm) {
    const host = ctx.host(vm.name);
    const problems = (await changedFiles(host, files(ctx, vm))).map((f) => `${f.path} differs`);
    if (!(await unitsActive(host, ['etcd']))) problems.push('etcd is not running');
    else {
      const health = await etcdctl(ctx, vm, ['endpoint', 'health'], { allowFailure: true });
      if (health.exitCode !== 0)
        problems.push(`etcd is not healthy: ${(health.stderr || health.stdout).trim()}`);
    }
    return problems;
  },
  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    const written = await putFiles(host, files(ctx, vm));
    await host.run(['install', '-d', '-o', 'etcd', '-g', 'etcd', '-m', '0700', GUEST.etcdData], {
      sudo: true,
    });
    // Members start together (the pipeline runs VMs in parallel): each waits for quorum.
    await startUnits(host, ['etcd'], written.length > 0);
  },
  waits: true,
  hint: (vm) => `Look at etcd's log: klab ssh ${vm.name} -- sudo journalctl -u etcd -n 50`,
  diagnose: (ctx, vm) => journalTail(ctx.host(vm.name), 'etcd'),
});
