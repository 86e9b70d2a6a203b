/**
 * klab doctor --guests: each finding is exact (a healthy VM passes, each broken thing is
 * named with its fix), and checks about parts not built yet are left out.
 */
import forge from 'node-forge';
import { describe, expect, it } from 'vitest';
import { unitStates } from '../../../provision/lib/probes.js';
import {
  certExpiryFindings,
  guestFindings,
  kubeletResolvConf,
  nameservers,
  resolvLoop,
  sharedMachineIds,
} from '../../../src/app/guest-doctor.js';
import type { LabState } from '../../../src/model/state.js';
import { FakeHost, type Handler } from '../../helpers/fake-host.js';
import { twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const spec = twoVmSpec();
const KEYS = forge.pki.rsa.generateKeyPair(512);

/** A self-signed certificate valid until `until` (PEM). */
function pemValidUntil(until: string): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = KEYS.publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date('2026-01-01T00:00:00Z');
  cert.validity.notAfter = new Date(until);
  cert.setSubject([{ name: 'commonName', value: 'test' }]);
  cert.setIssuer([{ name: 'commonName', value: 'test' }]);
  cert.sign(KEYS.privateKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}
const GATEWAY = spec.network.managementGateway;
const ALL_STEPS = [
  'default-route',
  'certs',
  'etcd',
  'flannel',
  'docker',
  'control-plane',
  'kube-proxy',
  'kubelet',
];

function state(steps: readonly string[]): LabState {
  const done = Object.fromEntries(steps.map((step) => [step, '2026-11-30T00:00:00Z']));
  return { version: 1, steps: { master: { ...done }, node1: { ...done } } };
}

interface Guest {
  routes?: string;
  swaps?: string;
  fstab?: string;
  machineId?: string;
  inactive?: string[];
  certs?: string;
  policy?: string;
  vxlanFrom?: string;
  etcdHealthy?: boolean;
  resolv?: string;
}

/** A VM as klab builds it, with the differences given. */
function guest(name: string, ip: string, g: Guest = {}): Handler {
  const units = [
    'klab-default-route',
    'etcd',
    'flanneld',
    'docker',
    'kube-apiserver',
    'kube-controller-manager',
    'kube-scheduler',
    'kube-proxy',
    'kubelet',
  ];
  return (argv) => {
    const line = argv.join(' ');
    if (line === 'ip -4 route show default')
      return { stdout: g.routes ?? `default via ${GATEWAY} dev eth0 proto static\n` };
    if (line === 'cat /proc/modules')
      return { stdout: 'overlay 1 0\nbr_netfilter 1 0\nvxlan 1 0\n' };
    if (argv[0] === 'cat' && argv[1]?.startsWith('/proc/sys/')) return { stdout: '1\n1\n1\n0\n' };
    if (line === 'cat /proc/swaps')
      return { stdout: g.swaps ?? 'Filename\tType\tSize\tUsed\tPriority\n' };
    if (line === 'cat /etc/fstab') return { stdout: g.fstab ?? 'UUID=x / ext4 defaults 0 1\n' };
    if (line === 'date +%s.%N') return { stdout: `${(Date.now() / 1000).toFixed(3)}\n` };
    if (line.startsWith('systemctl show -p Id,LoadState,ActiveState'))
      return {
        stdout: argv
          .slice(4)
          .map((unit) =>
            [
              `Id=${unit}.service`,
              `LoadState=${units.includes(unit) ? 'loaded' : 'not-found'}`,
              `ActiveState=${g.inactive?.includes(unit) || !units.includes(unit) ? 'inactive' : 'active'}`,
            ].join('\n'),
          )
          .join('\n\n'),
      };
    if (argv[0] === 'sh' && argv[2]?.includes('==> $f'))
      return {
        stdout:
          g.certs ?? `==> /etc/kubernetes/pki/ca.crt\n${pemValidUntil('2036-11-27T10:00:00Z')}`,
      };
    if (line.includes('endpoint health'))
      return g.etcdHealthy === false
        ? {
            exitCode: 1,
            // etcdctl 3.4's words: its client's JSON retry warning, the member, a summary.
            stderr: [
              '{"level":"warn","ts":"2026-12-07T01:34:08.342Z","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of unary invoker failed","attempt":0,"error":"rpc error: code = DeadlineExceeded desc = context deadline exceeded"}',
              `https://${ip}:2379 is unhealthy: failed to commit proposal: context deadline exceeded`,
              'Error: unhealthy cluster',
            ].join('\n'),
          }
        : { stdout: `https://${ip}:2379 is healthy: successfully committed proposal` };
    if (line.includes('member list'))
      return {
        stdout: `8e9e05c52164694d, started, master, https://${ip}:2380, https://${ip}:2379, false\n`,
      };
    if (line === 'cat /run/flannel/subnet.env')
      return { stdout: 'FLANNEL_NETWORK=172.30.0.0/16\nFLANNEL_SUBNET=172.30.7.1/24\n' };
    if (line === 'ip -d link show flannel.1')
      return {
        stdout: `5: flannel.1: <UP>\n    vxlan id 1 local ${g.vxlanFrom ?? ip} dev eth1 srcport 0 0 dstport 8472\n`,
      };
    if (line === 'iptables -S')
      return { stdout: `-P INPUT ACCEPT\n-P FORWARD ${g.policy ?? 'ACCEPT'}\n` };
    if (line === 'systemctl cat docker')
      return { stdout: '[Service]\nExecStartPost=/usr/sbin/iptables -P FORWARD ACCEPT\n' };
    if (line === 'cat /etc/resolv.conf')
      return { stdout: g.resolv ?? 'nameserver 192.168.121.1\n' };
    if (line === 'cat /etc/kubernetes/kubelet-config.yaml')
      return { stdout: 'kind: KubeletConfiguration\n' };
    if (line === 'cat /etc/machine-id') return { stdout: `${g.machineId ?? `id-${name}`}\n` };
    return undefined;
  };
}

async function doctor(master: Guest = {}, node1: Guest = {}, steps = ALL_STEPS) {
  const hosts = {
    master: new FakeHost('master', guest('master', spec.vms[0]?.ip ?? '', master)),
    node1: new FakeHost('node1', guest('node1', spec.vms[1]?.ip ?? '', node1)),
  };
  const ctx = testStepContext(spec, hosts);
  return guestFindings(ctx, state(steps), spec.vms);
}

const failed = (findings: Awaited<ReturnType<typeof doctor>>) =>
  findings.filter((finding) => finding.status !== 'ok');

describe('klab doctor --guests', () => {
  it('finds nothing wrong on VMs as klab builds them, and checks each part on each VM', async () => {
    const findings = await doctor();
    expect(failed(findings)).toEqual([]);
    const checks = (vm: string) => findings.filter((f) => f.vm === vm).map((f) => f.check);
    expect(checks('master')).toEqual([
      'default route',
      'kernel',
      'swap',
      'clock',
      'units',
      'certificates',
      'etcd',
      'flannel',
      'FORWARD',
      'resolv.conf',
      'machine-id',
    ]);
    // etcd runs on the master only in this lab.
    expect(checks('node1')).not.toContain('etcd');
  });

  it('names a deleted default route and a stopped etcd member, each with its fix', async () => {
    const findings = failed(
      await doctor({ etcdHealthy: false, inactive: ['etcd'] }, { routes: '' }),
    );
    expect(findings).toEqual([
      expect.objectContaining({
        vm: 'master',
        check: 'units',
        status: 'fail',
        detail: 'not running: etcd (inactive)',
        fix: expect.stringContaining('sudo systemctl start etcd'),
      }),
      expect.objectContaining({
        vm: 'master',
        check: 'etcd',
        status: 'fail',
        detail:
          'this member is not healthy: https://10.77.0.10:2379 is unhealthy: failed to commit proposal: context deadline exceeded',
        fix: expect.stringContaining('etcd-member-stopped'),
      }),
      expect.objectContaining({
        vm: 'node1',
        check: 'default route',
        status: 'fail',
        detail: expect.stringContaining('have: none'),
        fix: 'klab ssh node1 -- sudo systemctl restart klab-default-route (lesson: route-deleted)',
      }),
    ]);
  });

  it('finds swap, a shared machine-id, flannel on the wrong address, a DROP policy and a resolv.conf loop', async () => {
    const findings = failed(
      await doctor(
        { machineId: 'same' },
        {
          machineId: 'same',
          swaps: 'Filename\tType\n/swapfile partition\t0\n',
          fstab: '/swapfile none swap sw 0 0\n',
          vxlanFrom: '192.168.121.9',
          policy: 'DROP',
          resolv: 'nameserver 127.0.0.53\n',
        },
      ),
    );
    expect(findings.map((f) => `${f.vm} ${f.check} ${f.status}`)).toEqual([
      'master machine-id fail',
      'node1 swap fail',
      'node1 flannel fail',
      'node1 FORWARD fail',
      'node1 resolv.conf warn',
      'node1 machine-id fail',
    ]);
    expect(findings.find((f) => f.check === 'flannel')?.detail).toContain(
      'not the private address',
    );
  });

  it('leaves out what is not built yet: a lab after its certificates has no units or etcd to judge', async () => {
    const findings = await doctor({}, {}, ['default-route', 'certs']);
    const checks = new Set(findings.map((f) => f.check));
    expect(checks.has('etcd')).toBe(false);
    expect(checks.has('flannel')).toBe(false);
    expect(checks.has('resolv.conf')).toBe(false);
    expect(findings.find((f) => f.check === 'units')).toMatchObject({ status: 'ok' });
  });

  it('reads certificate end dates: expired fails, within 30 days warns', () => {
    const now = Date.parse('2029-11-20T00:00:00Z');
    const listing = [
      ['/etc/kubernetes/pki/ca.crt', pemValidUntil('2036-11-27T10:00:00Z')],
      ['/etc/kubernetes/pki/apiserver.crt', pemValidUntil('2029-11-29T10:00:00Z')],
      ['/etc/kubernetes/pki/old.crt', pemValidUntil('2029-11-01T10:00:00Z')],
      ['/etc/kubernetes/pki/broken.crt', 'not a certificate'],
    ]
      .map(([file, pem]) => `==> ${file}\n${pem}`)
      .join('\n');
    const found = certExpiryFindings(listing, now);
    expect(found.count).toBe(4);
    expect(found.expired).toEqual([
      '/etc/kubernetes/pki/old.crt (expired Nov  1 10:00:00 2029 GMT)',
      '/etc/kubernetes/pki/broken.crt (unreadable)',
    ]);
    expect(found.soon).toEqual(['/etc/kubernetes/pki/apiserver.crt (9 days left)']);
  });

  it('tells a resolv.conf loop: a loopback nameserver the kubelet hands to pods', () => {
    expect(nameservers('# x\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n')).toEqual([
      '127.0.0.53',
      '10.0.0.1',
    ]);
    expect(resolvLoop('nameserver 127.0.0.53\n', undefined)).toEqual(['127.0.0.53']);
    expect(resolvLoop('nameserver 127.0.0.53\n', '/run/systemd/resolve/resolv.conf')).toEqual([]);
    expect(kubeletResolvConf('kind: X\nresolvConf: /run/systemd/resolve/resolv.conf\n')).toBe(
      '/run/systemd/resolve/resolv.conf',
    );
    expect(
      sharedMachineIds(
        new Map([
          ['a', '1'],
          ['b', '1'],
          ['c', '2'],
        ]),
      ),
    ).toEqual(['a', 'b']);
  });

  it('reads unit states, telling a unit this VM does not have from one that is down', () => {
    expect(
      unitStates(
        'Id=etcd.service\nLoadState=loaded\nActiveState=failed\n\nId=kubelet.service\nLoadState=not-found\nActiveState=inactive\n',
      ),
    ).toEqual([
      { unit: 'etcd', loaded: true, active: 'failed' },
      { unit: 'kubelet', loaded: false, active: 'inactive' },
    ]);
  });
});
