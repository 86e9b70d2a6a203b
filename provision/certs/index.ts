/**
 * x03 of the tutorial: each VM gets exactly the certificates, keys and kubeconfigs its
 * components use, from the lab PKI on the host (klab certs). Nodes never see a CA key;
 * etcd's files belong to the etcd user. A renewed certificate is re-copied on the next run.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { GUEST } from '../../src/model/guest-paths.js';
import type { VmPlan } from '../../src/model/spec.js';
import { isEtcdMember, isOn } from '../../src/model/topology.js';
import { planPki } from '../../src/pki/plan.js';
import { probeStep } from '../lib/cluster.js';
import { changedFiles, type ManagedFile, putFiles } from '../lib/guest.js';
import type { StepContext } from '../lib/step.js';

async function pkiFile(ctx: StepContext, name: string): Promise<string> {
  return readFile(path.join(ctx.pkiDir, name), 'utf8');
}

/** Every file this VM gets, with its place, mode and owner. */
export async function certFiles(ctx: StepContext, vm: VmPlan): Promise<ManagedFile[]> {
  const plan = planPki(ctx.spec);
  const master = isOn(vm, 'masters');
  const files: ManagedFile[] = [];
  const put = async (source: string, dest: string, mode: number, owner?: string) =>
    files.push({
      path: dest,
      content: await pkiFile(ctx, source),
      mode,
      ...(owner ? { owner } : {}),
    });

  await put('ca.crt', `${GUEST.pki}/ca.crt`, 0o644);
  // Every VM runs flanneld, an etcd client: it needs etcd's own CA to trust the members.
  await put('etcd-ca.crt', `${GUEST.pki}/etcd-ca.crt`, 0o644);
  for (const cert of plan.certs.filter((entry) => entry.vms.includes(vm.name))) {
    const etcdOwn = cert.name.startsWith('etcd-server-') || cert.name.startsWith('etcd-peer-');
    const dir = etcdOwn ? GUEST.etcdPki : GUEST.pki;
    const owner = etcdOwn ? 'etcd:etcd' : undefined;
    // The learner's etcdctl identity is readable by the vagrant user, like ~/.kube/config.
    const keyOwner = cert.name === 'etcd-client-admin' ? 'root:vagrant' : owner;
    await put(`${cert.name}.crt`, `${dir}/${cert.name}.crt`, 0o644, owner);
    await put(
      `${cert.name}.key`,
      `${dir}/${cert.name}.key`,
      keyOwner === 'root:vagrant' ? 0o640 : 0o600,
      keyOwner,
    );
  }
  if (isEtcdMember(ctx.spec, vm)) {
    // etcd trusts only its own CA, for clients and peers: a kube-proxy or kubelet
    // certificate (signed by the lab CA) is refused.
    await put('etcd-ca.crt', `${GUEST.etcdPki}/etcd-ca.crt`, 0o644, 'etcd:etcd');
  }
  if (master) {
    // The controller manager signs kubelet client certificates (TLS bootstrap) with it.
    await put('ca.key', `${GUEST.pki}/ca.key`, 0o600);
    await put('front-proxy-ca.crt', `${GUEST.pki}/front-proxy-ca.crt`, 0o644);
    await put('sa.key', `${GUEST.pki}/sa.key`, 0o600);
    await put('sa.pub', `${GUEST.pki}/sa.pub`, 0o644);
    await put('encryption-config.yaml', `${GUEST.k8sDir}/encryption-config.yaml`, 0o600);
  }
  for (const kc of plan.kubeconfigs.filter((entry) => entry.vms.includes(vm.name))) {
    // Kubelets join through TLS bootstrapping; their pre-issued client kubeconfig stays on the host.
    if (kc.name.startsWith('kubelet-')) continue;
    const dest = kc.name.startsWith('bootstrap-') ? 'bootstrap' : kc.name;
    await put(`kubeconfigs/${kc.name}.kubeconfig`, `${GUEST.k8sDir}/${dest}.kubeconfig`, 0o600);
  }
  return files;
}

export const certsStep = probeStep({
  id: 'certs',
  title: 'Copy certificates, keys and kubeconfigs to the VMs that use them',
  async problems(ctx, vm) {
    const files = await certFiles(ctx, vm);
    return (await changedFiles(ctx.host(vm.name), files)).map((file) => `${file.path} differs`);
  },
  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    const files = await certFiles(ctx, vm);
    await host.run(['mkdir', '-p', GUEST.pki, GUEST.etcdPki], { sudo: true });
    await putFiles(host, files);
    if (isEtcdMember(ctx.spec, vm)) {
      await host.run(['chown', 'etcd:etcd', GUEST.etcdPki], { sudo: true });
      await host.run(['chmod', '0700', GUEST.etcdPki], { sudo: true });
    }
  },
  hint: () => 'Check the lab PKI with "klab certs check", then re-run "klab create".',
});
