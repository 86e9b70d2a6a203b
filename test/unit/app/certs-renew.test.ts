/**
 * Renewal on a live lab restarts exactly the components that read a changed file, bottom
 * up; a new CA is refused on a lab with VMs before anything changes.
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { normalSerial } from '../../../src/adapters/tls.js';
import {
  checkServed,
  generateCerts,
  liveRenewRefusal,
  openPki,
  renewCerts,
  restartsFor,
  servedEndpoints,
} from '../../../src/app/certs.js';
import { isKlabError } from '../../../src/model/errors.js';
import { nullSink } from '../../../src/model/events.js';
import { FakeMachines } from '../../helpers/fake-ports.js';
import { defaultSpec } from '../../helpers/specs.js';

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

describe('klab certs check: what the servers present', () => {
  let dir: string | undefined;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('names each server: the apiserver, every etcd member (client and peer port), every kubelet', () => {
    const endpoints = servedEndpoints(defaultSpec()).map((e) => `${e.name} ${e.host}:${e.port}`);
    expect(endpoints[0]).toMatch(/^apiserver [\d.]+:6443$/);
    expect(endpoints.filter((e) => e.startsWith('etcd-'))).toHaveLength(6);
    expect(endpoints.filter((e) => e.startsWith('kubelet-'))).toEqual([
      expect.stringMatching(/^kubelet-node1 [\d.]+:10250$/),
      expect.stringMatching(/^kubelet-node2 /),
      expect.stringMatching(/^kubelet-node3 /),
    ]);
  });

  it("passes a server presenting the lab's file, fails an old serial and an expired one, only where the step is done", async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'klab-served-'));
    await writeFile(path.join(dir, 'Vagrantfile'), '# a created lab\n');
    const target = await openPki(dir);
    await generateCerts(target, nullSink);
    const serial = async (name: string) =>
      normalSerial(
        new X509Certificate(await readFile(path.join(target.dir, `${name}.crt`))).serialNumber,
      );
    // The control plane and etcd are done on the master, nothing on the nodes yet.
    await mkdir(path.join(dir, '.klab'), { recursive: true });
    await writeFile(
      path.join(dir, '.klab', 'state.json'),
      JSON.stringify({ version: 1, steps: { master: { etcd: 'x', 'control-plane': 'x' } } }),
    );
    const machines = new FakeMachines();
    for (const vm of ['master', 'node1', 'node2', 'node3']) machines.vmStates.set(vm, 'running');
    const future = new Date(Date.now() + 86_400_000 * 365);
    const served = new Map<number, { serial: string; validTo: Date; subject: string }>([
      [6443, { serial: 'ABC123', validTo: future, subject: 'CN=kube-apiserver' }],
      [2379, { serial: await serial('etcd-server-master'), validTo: future, subject: '' }],
      [2380, { serial: await serial('etcd-peer-master'), validTo: new Date(0), subject: '' }],
    ]);
    const findings = await checkServed(
      { dir, sink: nullSink, ports: { machines } },
      target,
      async (host, port) => {
        const answer = served.get(port);
        if (!answer || host !== '192.168.56.10') throw new Error('connection refused');
        return answer;
      },
    );
    expect(findings.map((f) => `${f.name.split(' ')[0]} ${f.status}`)).toEqual([
      'apiserver fail',
      'etcd-server-master ok',
      'etcd-peer-master fail',
    ]);
    expect(findings[0]?.detail).toMatch(
      /serves serial ABC123, the lab's file has .*klab certs renew apiserver/,
    );
    expect(findings[2]?.detail).toMatch(/expired/);
  }, 60_000);
});
