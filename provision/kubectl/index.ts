/**
 * x05 of the tutorial: kubectl for the learner on the master: the admin kubeconfig in
 * ~/.kube/config of vagrant and root, and etcdctl's settings in the login environment.
 */

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { GUEST } from '../../src/model/guest-paths.js';
import { etcdEndpoints } from '../../src/model/topology.js';
import { probeStep } from '../lib/cluster.js';
import { changedFiles, type ManagedFile, putFiles } from '../lib/guest.js';
import type { StepContext } from '../lib/step.js';

async function files(ctx: StepContext): Promise<ManagedFile[]> {
  const admin = await readFile(path.join(ctx.pkiDir, 'kubeconfigs', 'admin.kubeconfig'), 'utf8');
  const etcdEnv = [
    '# Managed by klab: etcdctl talks to the lab etcd with the admin client certificate.',
    'export ETCDCTL_API=3',
    `export ETCDCTL_ENDPOINTS=${etcdEndpoints(ctx.spec)}`,
    `export ETCDCTL_CACERT=${GUEST.pki}/etcd-ca.crt`,
    `export ETCDCTL_CERT=${GUEST.pki}/etcd-client-admin.crt`,
    `export ETCDCTL_KEY=${GUEST.pki}/etcd-client-admin.key`,
    '',
  ].join('\n');
  return [
    { path: '/home/vagrant/.kube/config', content: admin, mode: 0o600, owner: 'vagrant:vagrant' },
    { path: '/root/.kube/config', content: admin, mode: 0o600 },
    { path: '/etc/profile.d/klab-etcdctl.sh', content: etcdEnv, mode: 0o644 },
  ];
}

export const kubectlStep = probeStep({
  id: 'kubectl',
  title: 'kubectl and etcdctl for you on the master',
  on: 'masters',
  async problems(ctx, vm) {
    const host = ctx.host(vm.name);
    const problems = (await changedFiles(host, await files(ctx))).map((f) => `${f.path} differs`);
    if (problems.length > 0) return problems;
    // As the vagrant user, the way a learner types it.
    const version = await host.run(
      [`${GUEST.bin}/kubectl`, 'get', '--raw', '/version', '--request-timeout=20s'],
      {
        allowFailure: true,
      },
    );
    if (version.exitCode !== 0) problems.push(`kubectl as vagrant fails: ${version.stderr.trim()}`);
    return problems;
  },
  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    await putFiles(host, await files(ctx));
    await host.run(['chown', 'vagrant:vagrant', '/home/vagrant/.kube'], { sudo: true });
  },
  hint: (vm) => `Try it yourself: klab ssh ${vm.name} -- kubectl get nodes`,
});
