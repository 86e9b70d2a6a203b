/**
 * x05 of the tutorial: kubectl for the learner on the master: the admin kubeconfig in
 * ~/.kube/config of vagrant and root, and etcdctl's settings in the login environment.
 */

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { GUEST } from '../../src/model/guest-paths.js';
import type { VmPlan } from '../../src/model/spec.js';
import { etcdEndpoints } from '../../src/model/topology.js';
import { etcdctlLines, probeStep } from '../lib/cluster.js';
import { changedFiles, type ManagedFile, putFiles } from '../lib/guest.js';
import { fileDiffers } from '../lib/service-step.js';
import type { Step, StepContext } from '../lib/step.js';

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

/**
 * The result, however it was made (klab's files or a kubeconfig the learner built with
 * `kubectl config`): as the vagrant user, kubectl reaches the apiserver, verifying it with a
 * CA rather than skipping the check, as the cluster admin; and etcdctl, in a login shell,
 * finds etcd healthy.
 */
export async function kubectlOutcome(ctx: StepContext, vm: VmPlan): Promise<string[]> {
  const host = ctx.host(vm.name);
  const kubectl = (args: readonly string[]) =>
    host.run([`${GUEST.bin}/kubectl`, ...args, '--request-timeout=20s'], { allowFailure: true });
  const version = await kubectl(['get', '--raw', '/version']);
  if (version.exitCode !== 0) {
    return [`kubectl as vagrant fails: ${(version.stderr || version.stdout).trim()}`];
  }
  const problems: string[] = [];
  const skip = await kubectl([
    'config',
    'view',
    '--minify',
    '-o',
    'jsonpath={.clusters[0].cluster.insecure-skip-tls-verify}',
  ]);
  if (skip.stdout.trim() === 'true') {
    problems.push(
      "vagrant's kubeconfig skips the apiserver's certificate check (insecure-skip-tls-verify): give it the lab CA instead",
    );
  }
  const admin = await kubectl(['auth', 'can-i', '*', '*']);
  if (admin.stdout.trim() !== 'yes') {
    problems.push(
      "kubectl as vagrant is not the cluster admin (kubectl auth can-i '*' '*' says no): use the admin certificate",
    );
  }
  const etcd = await host.run(['bash', '-lc', 'etcdctl endpoint health'], { allowFailure: true });
  if (etcd.exitCode !== 0) {
    problems.push(
      `etcdctl in a login shell of vagrant fails: ${etcdctlLines(etcd.stderr || etcd.stdout)[0] ?? ''} (its ETCDCTL_* settings, /etc/profile.d)`,
    );
  }
  return problems;
}

const step = probeStep({
  id: 'kubectl',
  title: 'kubectl and etcdctl for you on the master',
  on: 'masters',
  async problems(ctx, vm) {
    const host = ctx.host(vm.name);
    const problems = (await changedFiles(host, await files(ctx))).map((f) => fileDiffers(f.path));
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

export const kubectlStep: Step = { ...step, outcome: kubectlOutcome };
