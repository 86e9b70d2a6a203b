/**
 * Renewal on a live lab restarts exactly the components that read a changed file, bottom
 * up; a new CA is refused on a lab with VMs before anything changes.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { liveRenewRefusal, openPki, renewCerts, restartsFor } from '../../../src/app/certs.js';
import { isKlabError } from '../../../src/model/errors.js';
import { nullSink } from '../../../src/model/events.js';

describe('the restart set of a renewal', () => {
  it.each([
    [
      ['/etc/kubernetes/pki/apiserver.crt', '/etc/kubernetes/pki/apiserver.key'],
      ['kube-apiserver'],
    ],
    [['/etc/kubernetes/pki/apiserver-kubelet-client.crt'], ['kube-apiserver']],
    [['/etc/kubernetes/pki/etcd-client-apiserver.key'], ['kube-apiserver']],
    [['/etc/kubernetes/pki/front-proxy-client.crt'], ['kube-apiserver']],
    [['/etc/etcd/pki/etcd-server-node1.crt', '/etc/etcd/pki/etcd-peer-node1.key'], ['etcd']],
    [['/etc/kubernetes/pki/etcd-client-flanneld.crt'], ['flanneld']],
    [['/etc/kubernetes/kube-controller-manager.kubeconfig'], ['kube-controller-manager']],
    [['/etc/kubernetes/kube-scheduler.kubeconfig'], ['kube-scheduler']],
    [['/etc/kubernetes/kube-proxy.kubeconfig'], ['kube-proxy']],
    [['/etc/kubernetes/pki/kubelet-node1.crt'], ['kubelet']],
    // Read at every call, or only before the kubelet has a certificate: nothing restarts.
    [['/etc/kubernetes/admin.kubeconfig', '/etc/kubernetes/pki/etcd-client-admin.crt'], []],
    [['/etc/kubernetes/bootstrap.kubeconfig'], []],
  ])('%j -> %j', (files, units) => {
    expect(restartsFor(files)).toEqual(units);
  });

  it('restarts bottom up, each unit once, whatever order the files came in', () => {
    expect(
      restartsFor([
        '/etc/kubernetes/kube-proxy.kubeconfig',
        '/etc/kubernetes/pki/apiserver.crt',
        '/etc/etcd/pki/etcd-server-master.crt',
        '/etc/kubernetes/pki/apiserver.key',
        '/etc/kubernetes/kube-scheduler.kubeconfig',
      ]),
    ).toEqual(['etcd', 'kube-apiserver', 'kube-scheduler', 'kube-proxy']);
  });

  it('refuses a new CA or service account key on a running lab, not a leaf', () => {
    expect(liveRenewRefusal(['ca'])).toMatch(/docs\/certificates\.md/);
    expect(liveRenewRefusal(['etcd-ca'])).toBeDefined();
    expect(liveRenewRefusal(['sa'])).toBeDefined();
    expect(liveRenewRefusal(['apiserver'])).toBeUndefined();
    expect(liveRenewRefusal(['all'])).toBeUndefined();
  });
});

describe('renewCerts on a lab with VMs', () => {
  let dir: string | undefined;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses "ca" before touching the PKI; --host-only renews it', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'klab-renew-'));
    await writeFile(path.join(dir, 'Vagrantfile'), '# a created lab\n');
    const target = await openPki(dir);
    const request = { dir, sink: nullSink };
    const refused = await renewCerts(request, target, ['ca'], false).catch((e: unknown) => e);
    expect(isKlabError(refused) && refused.code).toBe('KLAB_USAGE');
    // Nothing was generated.
    expect(await readdir(target.dir).catch(() => [])).toEqual([]);
    const hostOnly = await renewCerts(request, target, ['ca'], true);
    expect(hostOnly.pushed).toBeUndefined();
    expect(hostOnly.done.issued).toContain('ca');
  }, 60_000);
});
