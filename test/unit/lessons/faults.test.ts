/** The break/fix faults' checks are exact: a fault bypassed or half repaired still fails. */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deleteRuleCommands,
  findFault,
  flannelForwardRules,
  forwardPolicy,
  issueApiserverCertScript,
  kubeletAuthBypassed,
  kubeletClientCaFile,
  restoresForwardAccept,
  wrongApiserverSans,
} from '../../../src/lessons/faults.js';
import { FakeHost, type Handler } from '../../helpers/fake-host.js';
import { makeTestCa } from '../../helpers/openssl.js';
import { defaultSpec, twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const spec = twoVmSpec();
const LAB_CA = '-----BEGIN CERTIFICATE-----\nLAB\n-----END CERTIFICATE-----';
const OTHER_CA = '-----BEGIN CERTIFICATE-----\nOTHER\n-----END CERTIFICATE-----';
let pkiDir: string;

beforeAll(async () => {
  pkiDir = await mkdtemp(path.join(os.tmpdir(), 'klab-fault-pki-'));
  await writeFile(path.join(pkiDir, 'ca.crt'), `${LAB_CA}\n`);
});
afterAll(() => rm(pkiDir, { recursive: true, force: true }));

function fault(id: string) {
  const found = findFault(id);
  if (!found) throw new Error(`no fault ${id}`);
  return found;
}

/** master answers kubectl, node1 answers with `node`; both record what ran. */
function lab(node: Handler, master: Handler = () => undefined) {
  const hosts = { master: new FakeHost('master', master), node1: new FakeHost('node1', node) };
  return { hosts, ctx: testStepContext(spec, hosts, { pkiDir }) };
}

const READY_NODE = JSON.stringify({
  status: { conditions: [{ type: 'Ready', status: 'True' }] },
});
const NOT_READY_NODE = JSON.stringify({
  status: { conditions: [{ type: 'Ready', status: 'False', message: 'kubelet stopped posting' }] },
});

function kubectlMaster(node: string, proxy = 'ok'): Handler {
  return (argv) => {
    const args = argv.join(' ');
    if (args.includes('get node node1')) return { stdout: node };
    if (args.includes('/proxy/healthz')) return { stdout: proxy };
    return undefined;
  };
}

describe('kubelet-api-forbidden', () => {
  const KUBELET_CONFIG =
    'authentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: true\nauthorization:\n  mode: Webhook\n';
  const nodeWith =
    (config: string): Handler =>
    (argv) =>
      argv[0] === 'cat' && argv.at(-1)?.endsWith('kubelet-config.yaml')
        ? { stdout: config }
        : undefined;
  const master =
    (proxy: string, clusterAdmin: boolean): Handler =>
    (argv) => {
      const args = argv.join(' ');
      if (args.includes('/proxy/healthz')) {
        return proxy === 'ok' ? { stdout: 'ok' } : { exitCode: 1, stderr: proxy };
      }
      if (args.includes('auth can-i delete secrets')) {
        return { stdout: clusterAdmin ? 'yes' : 'no', exitCode: clusterAdmin ? 0 : 1 };
      }
      return undefined;
    };
  const FORBIDDEN =
    'Error from server (Forbidden): Forbidden (user=kube-apiserver-kubelet-client, verb=get, resource=nodes, subresource=proxy)';

  it('deletes the binding, and fails while the kubelet answers Forbidden', async () => {
    const { ctx, hosts } = lab(nodeWith(KUBELET_CONFIG), master(FORBIDDEN, false));
    await fault('kubelet-api-forbidden').inject(ctx);
    expect(hosts.master.commands().join('\n')).toContain(
      'delete clusterrolebinding klab:apiserver-to-kubelet',
    );
    // Restarted, so that no cached "allowed" answer hides the fault.
    expect(hosts.node1.commands()).toContain('sudo systemctl restart kubelet');
    const problems = await fault('kubelet-api-forbidden').problems(ctx);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('cannot use the kubelet API on node1');
    expect(problems[0]).toContain('subresource=proxy');
  });

  it('passes once the node proxy answers, the user is no cluster-admin and the kubelet still asks', async () => {
    const { ctx } = lab(nodeWith(KUBELET_CONFIG), master('ok', false));
    expect(await fault('kubelet-api-forbidden').problems(ctx)).toEqual([]);
  });

  it('a bypass does not pass: cluster-admin for the user, or a kubelet that lets everyone in', async () => {
    const admin = lab(nodeWith(KUBELET_CONFIG), master('ok', true));
    const adminProblems = await fault('kubelet-api-forbidden').problems(admin.ctx);
    expect(adminProblems).toHaveLength(1);
    expect(adminProblems[0]).toContain('not cluster-admin');
    const open = KUBELET_CONFIG.replace('mode: Webhook', 'mode: AlwaysAllow');
    const bypass = lab(nodeWith(open), master('ok', false));
    const bypassProblems = await fault('kubelet-api-forbidden').problems(bypass.ctx);
    expect(bypassProblems).toHaveLength(1);
    expect(bypassProblems[0]).toContain('AlwaysAllow');
  });

  it('reads what a kubelet configuration lets through', () => {
    expect(kubeletAuthBypassed(KUBELET_CONFIG)).toEqual([]);
    expect(kubeletAuthBypassed('authorization:\n  mode: Webhook\n')).toHaveLength(1);
    expect(kubeletAuthBypassed(': : :')).toHaveLength(1);
  });

  it('its repair applies the binding to the user, with the kubelet API role only', async () => {
    const stdins: string[] = [];
    const { ctx } = lab(nodeWith(KUBELET_CONFIG), (argv, options) => {
      if (argv.includes('apply')) stdins.push(String(options.stdin ?? ''));
      return undefined;
    });
    await fault('kubelet-api-forbidden').repair(ctx);
    const applied = stdins.join('\n');
    expect(applied).toContain('system:kubelet-api-admin');
    expect(applied).toContain('kube-apiserver-kubelet-client');
  });
});

describe('apiserver-cert-wrong-san', () => {
  const CURL_SAN =
    "curl: (60) SSL: no alternative certificate subject name matches target host name '10.254.0.1'";
  /** node1: curl answers per URL; grep finds `skipping` kubeconfigs. */
  const nodeWith =
    (
      curl: (url: string) => Partial<{ stdout: string; stderr: string; exitCode: number }>,
      skipping = '',
    ): Handler =>
    (argv) => {
      if (argv[0] === 'curl') return curl(argv.at(-1) ?? '');
      if (argv[0] === 'sh' && argv[2]?.startsWith('grep -l insecure-skip-tls-verify')) {
        return skipping ? { stdout: skipping } : { exitCode: 2 };
      }
      return undefined;
    };
  const healthyMaster: Handler = (argv) => {
    const args = argv.join(' ');
    if (args.includes('get --raw /healthz')) return { stdout: 'ok' };
    if (args.includes('componentstatuses')) {
      return {
        stdout: JSON.stringify({
          items: [
            { metadata: { name: 'etcd-0' }, conditions: [{ type: 'Healthy', status: 'True' }] },
          ],
        }),
      };
    }
    if (args.includes('get node node1')) return { stdout: READY_NODE };
    return undefined;
  };

  it("the fault certificate names the master but none of the kubernetes Service's names", () => {
    const sans = wrongApiserverSans(spec);
    expect(sans).toContain(`IP:${spec.vms[0]?.ip}`);
    expect(sans).toContain('DNS:master');
    expect(sans).toContain('IP:127.0.0.1');
    expect(sans).not.toContain('10.254.0.1');
    expect(sans).not.toContain('kubernetes.default');
  });

  it('fails while node1 cannot verify the apiserver through the Service; the master address still can', async () => {
    const { ctx } = lab(
      nodeWith((url) =>
        url.includes('6443') ? { stdout: '401' } : { exitCode: 60, stderr: CURL_SAN },
      ),
      healthyMaster,
    );
    const problems = await fault('apiserver-cert-wrong-san').problems(ctx);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain(
      'node1 cannot verify kube-apiserver at https://10.254.0.1/healthz with the lab CA: curl: (60)',
    );
    expect(problems[1]).toContain('https://kubernetes.default.svc/healthz');
  });

  it('passes once every name verifies, the control plane is healthy and node1 Ready', async () => {
    const { ctx } = lab(
      nodeWith(() => ({ stdout: '401' })),
      healthyMaster,
    );
    expect(await fault('apiserver-cert-wrong-san').problems(ctx)).toEqual([]);
  });

  it('a bypass does not pass: a kubeconfig that skips the certificate check', async () => {
    const { ctx } = lab(
      nodeWith(() => ({ stdout: '401' }), '/etc/kubernetes/kubelet.kubeconfig\n'),
      healthyMaster,
    );
    const problems = await fault('apiserver-cert-wrong-san').problems(ctx);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('insecure-skip-tls-verify');
  });

  it('inject issues the certificate on the master and waits until the new apiserver serves', async () => {
    let curls = 0;
    const scripts: string[] = [];
    const { ctx } = lab(
      () => undefined,
      (argv) => {
        if (argv[0] === 'sh') scripts.push(argv[2] ?? '');
        if (argv[0] === 'curl') {
          curls += 1;
          return curls < 3
            ? { exitCode: 7, stderr: 'curl: (7) Failed to connect' }
            : { stdout: '401' };
        }
        return undefined;
      },
    );
    await fault('apiserver-cert-wrong-san').inject(ctx);
    expect(curls).toBe(3);
    expect(scripts[0]).toContain(`subjectAltName=${wrongApiserverSans(spec)}`);
    expect(scripts[0]).toContain('systemctl restart kube-apiserver');
  });

  it('the issuing script makes a CA-signed server certificate with exactly the SANs asked (real openssl)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-san-'));
    try {
      await makeTestCa(dir, 'ca', 'lab-ca');
      await execa('sh', [
        '-c',
        issueApiserverCertScript(wrongApiserverSans(spec), { dir, restart: 'true' }),
      ]);
      const pem = await readFile(path.join(dir, 'apiserver.crt'), 'utf8');
      const cert = new X509Certificate(pem);
      const ca = new X509Certificate(await readFile(path.join(dir, 'ca.crt'), 'utf8'));
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.subject).toBe('CN=kube-apiserver');
      expect(cert.checkIP('10.77.0.10')).toBe('10.77.0.10');
      expect(cert.checkIP('10.254.0.1')).toBeUndefined();
      expect(cert.checkHost('master')).toBe('master');
      expect(cert.checkHost('kubernetes.default.svc')).toBeUndefined();
      expect(cert.keyUsage).toContain('1.3.6.1.5.5.7.3.1');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('route-deleted', () => {
  const gateway = spec.network.managementGateway;
  const withRoutes =
    (routes: string, httpCode: string): Handler =>
    (argv) => {
      if (argv.join(' ') === 'ip -4 route show default') return { stdout: routes };
      if (argv[0] === 'curl') return { stdout: httpCode };
      return undefined;
    };

  it('fails with no default route and a dead ClusterIP, naming both', async () => {
    const { ctx } = lab(withRoutes('', '000'));
    const problems = await fault('route-deleted').problems(ctx);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain(`default via ${gateway} dev eth0`);
    expect(problems[1]).toMatch(/ClusterIP 10\.254\.0\.1:443 .* does not answer from node1/);
  });

  it('fails with a second default route, even when the ClusterIP answers', async () => {
    const two = `default via ${gateway} dev eth0\ndefault via 10.77.0.1 dev eth1 metric 50\n`;
    const { ctx } = lab(withRoutes(two, '401'));
    expect(await fault('route-deleted').problems(ctx)).toHaveLength(1);
  });

  it('passes with the one default route and a ClusterIP that answers (401 without credentials)', async () => {
    const { ctx } = lab(withRoutes(`default via ${gateway} dev eth0 onlink\n`, '401'));
    expect(await fault('route-deleted').problems(ctx)).toEqual([]);
  });
});

describe('default-route-unset (the default-route lesson)', () => {
  const gateway = spec.network.managementGateway;
  const klabRoutes = `default via ${gateway} dev eth0 onlink\n10.254.0.0/16 dev eth1 scope link\n172.30.0.0/16 dev eth1 scope link\n192.168.213.0/24 dev eth1 proto kernel scope link src 192.168.213.11\n`;
  const routes =
    (table: string): Handler =>
    (argv) =>
      argv.join(' ') === 'ip -4 route show' ? { stdout: table } : undefined;

  it("takes klab's unit, its files and its three routes away on every VM", async () => {
    const { hosts, ctx } = lab(() => undefined);
    await fault('default-route-unset').inject(ctx);
    for (const host of [hosts.master, hosts.node1]) {
      const script = host.commands().join('\n');
      expect(script).toContain('systemctl disable --now klab-default-route.service');
      expect(script).toContain('/etc/klab/default-route.env');
      expect(script).toContain('ip -4 route del default');
      expect(script).toContain(`ip -4 route del ${spec.network.serviceCidr}`);
      expect(script).toContain(`ip -4 route del ${spec.network.podCidr}`);
    }
  });

  it('names every missing route on every VM, with the command that adds it', async () => {
    const { ctx } = lab(routes('192.168.213.0/24 dev eth1\n'), routes(klabRoutes));
    const problems = await fault('default-route-unset').problems(ctx);
    expect(problems).toEqual([
      `node1 should have exactly one default route, "default via ${gateway} dev eth0"; it has none`,
      `node1 does not route ${spec.network.serviceCidr} to the private interface: "ip route add ${spec.network.serviceCidr} dev eth1"`,
      `node1 does not route ${spec.network.podCidr} to the private interface: "ip route add ${spec.network.podCidr} dev eth1"`,
    ]);
  });

  it('fails on a default route through the private interface, or a second one', async () => {
    const wrong = klabRoutes.replace(
      `default via ${gateway} dev eth0`,
      'default via 192.168.213.1 dev eth1',
    );
    const second = `${klabRoutes}default via 192.168.213.1 dev eth1 metric 50\n`;
    for (const table of [wrong, second]) {
      const { ctx } = lab(routes(table), routes(klabRoutes));
      expect(await fault('default-route-unset').problems(ctx)).toEqual([
        expect.stringMatching(/^node1 should have exactly one default route/),
      ]);
    }
  });

  it('passes when every VM has the three routes, however they were made', async () => {
    const { ctx } = lab(routes(klabRoutes), routes(klabRoutes));
    expect(await fault('default-route-unset').problems(ctx)).toEqual([]);
  });
});

describe('kube-proxy-stopped', () => {
  const node =
    (active: string, httpCode: string): Handler =>
    (argv) => {
      if (argv[0] === 'systemctl') return { stdout: active, exitCode: active === 'active' ? 0 : 3 };
      if (argv[0] === 'curl') return { stdout: httpCode };
      if (argv[0] === 'ip')
        return { stdout: '172.30.5.0/24 via 172.30.5.0 dev flannel.1 onlink\n' };
      return undefined;
    };

  it('fails while kube-proxy is stopped, and while the ClusterIP is dead after a start', async () => {
    expect(await fault('kube-proxy-stopped').problems(lab(node('inactive', '000')).ctx)).toEqual([
      'kube-proxy is not running on node1',
      expect.stringContaining('does not answer from node1'),
    ]);
    expect(await fault('kube-proxy-stopped').problems(lab(node('active', '000')).ctx)).toHaveLength(
      1,
    );
  });

  it('passes once kube-proxy runs and the ClusterIP answers', async () => {
    expect(await fault('kube-proxy-stopped').problems(lab(node('active', '403')).ctx)).toEqual([]);
  });
});

describe('kubelet-wrong-ca', () => {
  const config = (file: string) =>
    `authentication:\n  x509:\n    clientCAFile: ${file}\nreadOnlyPort: 0\n`;
  const node =
    (caFile: string, content: string): Handler =>
    (argv) => {
      const file = argv.at(-1);
      if (argv[0] === 'cat' && file?.endsWith('kubelet-config.yaml'))
        return { stdout: config(caFile) };
      if (argv[0] === 'cat' && file === caFile) return { stdout: `${content}\n` };
      return undefined;
    };

  it('reads clientCAFile from the kubelet configuration', () => {
    expect(kubeletClientCaFile(config('/etc/kubernetes/pki/ca.crt'))).toBe(
      '/etc/kubernetes/pki/ca.crt',
    );
    expect(kubeletClientCaFile('clientCAFile: "/x/y.crt"\n')).toBe('/x/y.crt');
  });

  it('fails while the kubelet trusts another CA, and the node proxy is refused', async () => {
    const { ctx } = lab(
      node('/etc/kubernetes/pki/other-ca.crt', OTHER_CA),
      kubectlMaster(READY_NODE, 'Unauthorized'),
    );
    const problems = await fault('kubelet-wrong-ca').problems(ctx);
    expect(problems[0]).toContain('trusts /etc/kubernetes/pki/other-ca.crt');
    expect(problems[1]).toContain('cannot use the kubelet API on node1');
  });

  it('a bypass does not pass: the node proxy working is not enough while the CA is not the lab CA', async () => {
    const { ctx } = lab(node('/etc/kubernetes/pki/ca.crt', OTHER_CA), kubectlMaster(READY_NODE));
    expect(await fault('kubelet-wrong-ca').problems(ctx)).toHaveLength(1);
  });

  it('passes with the lab CA, wherever the file is, and the node proxy answering', async () => {
    const { ctx } = lab(
      node('/etc/kubernetes/pki/copy-of-lab-ca.crt', LAB_CA),
      kubectlMaster(READY_NODE),
    );
    expect(await fault('kubelet-wrong-ca').problems(ctx)).toEqual([]);
  });
});

describe('swap-on', () => {
  const node =
    (swaps: string, fstab: string, kubelet: string): Handler =>
    (argv) => {
      if (argv[0] === 'swapon') return { stdout: swaps };
      if (argv[0] === 'cat' && argv[1] === '/etc/fstab') return { stdout: fstab };
      if (argv[0] === 'systemctl')
        return { stdout: kubelet, exitCode: kubelet === 'active' ? 0 : 3 };
      return undefined;
    };
  const FSTAB = 'UUID=abc / ext4 errors=remount-ro 0 1\n';

  it('fails while swap is on and names the fstab line that brings it back: the same list whether the restarting kubelet is up at that moment or not', async () => {
    for (const kubelet of ['activating', 'active']) {
      const { ctx } = lab(
        node('/swapfile.klab\n', `${FSTAB}/swapfile.klab none swap sw 0 0\n`, kubelet),
        kubectlMaster(NOT_READY_NODE),
      );
      expect(await fault('swap-on').problems(ctx)).toEqual([
        'swap is on on node1: /swapfile.klab',
        '/etc/fstab on node1 turns swap on at boot: /swapfile.klab none swap sw 0 0',
      ]);
    }
  });

  it('with swap off for good, a kubelet that is down is named', async () => {
    const { ctx } = lab(node('', FSTAB, 'activating'), kubectlMaster(NOT_READY_NODE));
    expect(await fault('swap-on').problems(ctx)).toEqual(['kubelet is not running on node1']);
  });

  it('swapoff alone is not the fix: the fstab line would bring it back at boot', async () => {
    const { ctx } = lab(
      node('', `${FSTAB}/swapfile.klab none swap sw 0 0\n`, 'active'),
      kubectlMaster(READY_NODE),
    );
    expect(await fault('swap-on').problems(ctx)).toHaveLength(1);
  });

  it('a NotReady node does not pass: Ready is checked exactly', async () => {
    const { ctx } = lab(node('', FSTAB, 'active'), kubectlMaster(NOT_READY_NODE));
    expect(await fault('swap-on').problems(ctx)).toEqual([
      'node node1 is not Ready: kubelet stopped posting',
    ]);
  });

  it("a Ready from before the kubelet's restart does not pass (the repair restarts it)", async () => {
    const started = 'Mon 2026-11-30 07:00:00 UTC';
    const readyAt = (time: string) =>
      JSON.stringify({
        status: { conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: time }] },
      });
    const nodeStarted: Handler = (argv, options) =>
      argv.join(' ') === 'systemctl show kubelet -p ActiveEnterTimestamp --value'
        ? { stdout: `${started}\n` }
        : node('', FSTAB, 'active')(argv, options);
    const stale = lab(nodeStarted, kubectlMaster(readyAt('2026-11-30T06:59:55Z')));
    expect(await fault('swap-on').problems(stale.ctx)).toEqual([
      'node node1 shows Ready from before its kubelet restarted: the new kubelet has not reported yet',
    ]);
    const fresh = lab(nodeStarted, kubectlMaster(readyAt('2026-11-30T07:00:04Z')));
    expect(await fault('swap-on').problems(fresh.ctx)).toEqual([]);
  });

  it('passes with swap off for good, the kubelet running and the node Ready', async () => {
    const commented = `${FSTAB}# /swapfile none swap sw 0 0\n`;
    const { ctx } = lab(node('', commented, 'active'), kubectlMaster(READY_NODE));
    expect(await fault('swap-on').problems(ctx)).toEqual([]);
  });
});

describe('etcd-member-stopped and etcd-quorum-lost', () => {
  const threeMembers = defaultSpec();

  it('need three etcd members: a 2-VM lab cannot host them, and says why', () => {
    expect(fault('etcd-member-stopped').unsupported?.(spec)).toMatch(
      /needs three etcd members .* this lab has 1/,
    );
    expect(fault('etcd-quorum-lost').unsupported?.(threeMembers)).toBeUndefined();
  });

  it('stop the last members, never the first (it answers etcdctl for klab)', async () => {
    const hosts = Object.fromEntries(
      threeMembers.vms.map((vm) => [vm.name, new FakeHost(vm.name)]),
    ) as Record<string, FakeHost>;
    const ctx = testStepContext(threeMembers, hosts);
    await fault('etcd-quorum-lost').inject(ctx);
    const stoppedOn = Object.values(hosts)
      .filter((host) => host.calls.some((call) => call.argv.join(' ') === 'systemctl stop etcd'))
      .map((host) => host.name);
    expect(stoppedOn).toEqual(['node1', 'node2']);
  });

  it('fail while a member is stopped, naming it; pass only once the apiserver answers too', async () => {
    const member =
      (active: boolean): Handler =>
      (argv) => {
        if (argv[0] === 'systemctl')
          return { stdout: active ? 'active' : 'inactive', exitCode: active ? 0 : 3 };
        return undefined;
      };
    const apiserver =
      (healthz: string): Handler =>
      (argv) => {
        if (argv[0] === 'systemctl') return { stdout: 'active' };
        if (argv.includes('/healthz')) return { stdout: healthz };
        if (argv.includes('componentstatuses')) {
          return {
            stdout: JSON.stringify({
              items: [
                { metadata: { name: 'etcd-0' }, conditions: [{ type: 'Healthy', status: 'True' }] },
              ],
            }),
          };
        }
        return undefined;
      };
    const ctxWith = (node2Active: boolean, healthz: string) =>
      testStepContext(threeMembers, {
        master: new FakeHost('master', apiserver(healthz)),
        node1: new FakeHost('node1', member(true)),
        node2: new FakeHost('node2', member(node2Active)),
      });
    expect(await fault('etcd-member-stopped').problems(ctxWith(false, 'ok'))).toEqual([
      'etcd is not running on node2',
    ]);
    expect(await fault('etcd-member-stopped').problems(ctxWith(true, ''))).toEqual([
      'kube-apiserver /healthz: no answer',
    ]);
    expect(await fault('etcd-member-stopped').problems(ctxWith(true, 'ok'))).toEqual([]);
  });
});

describe('flannel-wrong-iface', () => {
  const LEASE_KEY = '/coreos.com/network/subnets/172.30.12.0-24';
  const STALE_KEY = '/coreos.com/network/subnets/172.30.35.0-24';
  const MGMT_IP = '192.168.121.57';
  const node1Ip = spec.vms[1]?.ip ?? '';
  const ENV = 'FLANNEL_NETWORK=172.30.0.0/16\nFLANNEL_SUBNET=172.30.12.1/24\n';
  const OWN_ROUTE = '172.30.12.0/24 dev docker0 proto kernel scope link src 172.30.12.1';
  const TAKEN_ROUTE = '172.30.12.0/24 via 172.30.12.0 dev flannel.1 onlink';

  /** node1 and etcd (on the master), as the fault and its repair leave them. */
  function world(state: { routes: string; leases: Map<string, string> }) {
    const node: Handler = (argv) => {
      const line = argv.join(' ');
      if (argv[0] === 'systemctl') return { stdout: 'active' };
      if (argv[0] === 'cat') return { stdout: ENV };
      if (line.startsWith('sh -c cat /run/flannel/subnet.env'))
        return {
          stdout: `${ENV}---\n5: docker0    inet 172.30.12.1/24 brd 172.30.12.255\n---\n${state.routes}\n`,
        };
      if (line.startsWith('ip route replace 172.30.12.0/24 dev docker0')) {
        state.routes = OWN_ROUTE;
        return {};
      }
      if (line.includes('-iface=')) {
        // the repair: flanneld back on the private address takes its old lease again
        state.leases.set(LEASE_KEY, node1Ip);
        return {};
      }
      return undefined;
    };
    const etcd: Handler = (argv) => {
      const key = argv.at(-1) ?? '';
      if (argv.includes('--prefix'))
        return {
          stdout: [...state.leases]
            .flatMap(([k, ip]) => [k, JSON.stringify({ PublicIP: ip, BackendType: 'vxlan' })])
            .join('\n'),
        };
      if (argv.includes('del')) {
        state.leases.delete(key);
        return {};
      }
      return undefined;
    };
    return lab(node, etcd);
  }

  it('finds the lease key from subnet.env', async () => {
    const { flannelLeaseKey } = await import('../../../src/lessons/faults.js');
    expect(flannelLeaseKey('FLANNEL_SUBNET=172.30.12.1/24\n')).toBe(LEASE_KEY);
    expect(flannelLeaseKey('FLANNEL_SUBNET=10.244.3.129/25\n')).toBe(
      '/coreos.com/network/subnets/10.244.3.128-25',
    );
    expect(flannelLeaseKey('')).toBeUndefined();
  });

  it('fails while the lease names the management address, passes with the private one', async () => {
    const wrong = world({ routes: OWN_ROUTE, leases: new Map([[LEASE_KEY, MGMT_IP]]) });
    expect((await fault('flannel-wrong-iface').problems(wrong.ctx))[0]).toContain(
      `over ${MGMT_IP}, not the private address ${node1Ip}`,
    );
    const right = world({ routes: OWN_ROUTE, leases: new Map([[LEASE_KEY, node1Ip]]) });
    expect(await fault('flannel-wrong-iface').problems(right.ctx)).toEqual([]);
  });

  it("also wants node1's own pods routed to docker0 and the stale lease gone; the repair does all three", async () => {
    // flanneld is back on the private address, but what the fault did is still there
    const state = {
      routes: TAKEN_ROUTE,
      leases: new Map([
        [LEASE_KEY, MGMT_IP],
        [STALE_KEY, MGMT_IP],
      ]),
    };
    state.leases.set(LEASE_KEY, node1Ip);
    const { ctx } = world(state);
    const problems = await fault('flannel-wrong-iface').problems(ctx);
    expect(problems).toEqual([
      expect.stringMatching(
        /^node1: this VM's own pod subnet 172\.30\.12\.0\/24 is routed "172\.30\.12\.0\/24 via 172\.30\.12\.0 dev flannel\.1 onlink"/,
      ),
      `the lease ${STALE_KEY} names ${MGMT_IP}, an address outside the lab's private network: every VM still routes that subnet there (delete it in etcd)`,
    ]);

    await fault('flannel-wrong-iface').repair(ctx);
    expect(state.routes).toBe(OWN_ROUTE);
    expect([...state.leases.keys()]).toEqual([LEASE_KEY]);
    expect(await fault('flannel-wrong-iface').problems(ctx)).toEqual([]);
  });
});

describe('forward-drop', () => {
  const POD_CIDR = spec.network.podCidr;
  const FLANNEL_RULES = [
    '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
    `-A FLANNEL-FWD -s ${POD_CIDR} -m comment --comment "flanneld forward" -j ACCEPT`,
    `-A FLANNEL-FWD -d ${POD_CIDR} -m comment --comment "flanneld forward" -j ACCEPT`,
  ];
  const KUBE_FORWARD = `-A KUBE-FORWARD -s ${POD_CIDR} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`;
  const DOCKER_UNIT = (post: boolean) =>
    `# /lib/systemd/system/docker.service\n[Service]\nExecStart=/usr/sbin/dockerd\n# /etc/systemd/system/docker.service.d/klab.conf\n[Service]\n${post ? 'ExecStartPost=/usr/sbin/iptables -P FORWARD ACCEPT\n' : ''}Restart=always\n`;

  interface NodeState {
    policy: string;
    flannelRules: boolean;
    dockerPost: boolean;
    flannelDisabled: boolean;
  }
  const node =
    (state: NodeState): Handler =>
    (argv) => {
      if (argv[0] === 'iptables' && argv[1] === '-S')
        return {
          stdout: [
            '-P INPUT ACCEPT',
            `-P FORWARD ${state.policy}`,
            ...(state.flannelRules ? FLANNEL_RULES : []),
            KUBE_FORWARD,
          ].join('\n'),
        };
      if (argv.join(' ') === 'systemctl cat docker')
        return { stdout: DOCKER_UNIT(state.dockerPost) };
      if (argv.join(' ').startsWith('systemctl show flanneld'))
        return {
          stdout: state.flannelDisabled
            ? 'Environment=FLANNELD_IPTABLES_FORWARD_RULES=false\n'
            : 'Environment=\n',
        };
      return undefined;
    };
  const master =
    (httpCode: string, phase = 'Running'): Handler =>
    (argv) => {
      if (argv.includes('pod') && argv.includes('forward-probe'))
        return { stdout: `${phase} 172.30.7.2` };
      if (argv[0] === 'curl')
        return {
          stdout: httpCode,
          exitCode: httpCode === '000' ? 28 : 0,
          stderr: httpCode === '000' ? 'curl: (28) Connection timed out' : '',
        };
      return undefined;
    };
  const broken: NodeState = {
    policy: 'DROP',
    flannelRules: false,
    dockerPost: false,
    flannelDisabled: true,
  };

  it("finds flanneld's FORWARD rules in both eras, and not kube-proxy's", () => {
    const v010 = [`-A FORWARD -s ${POD_CIDR} -j ACCEPT`, `-A FORWARD -d ${POD_CIDR} -j ACCEPT`];
    expect(flannelForwardRules([...v010, KUBE_FORWARD].join('\n'), POD_CIDR)).toEqual(v010);
    expect(flannelForwardRules([...FLANNEL_RULES, KUBE_FORWARD].join('\n'), POD_CIDR)).toEqual(
      FLANNEL_RULES,
    );
    expect(deleteRuleCommands([FLANNEL_RULES[0] ?? ''])).toEqual([
      'iptables -D FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
    ]);
    expect(forwardPolicy('-P INPUT ACCEPT\n-P FORWARD DROP\n')).toBe('DROP');
  });

  it('reads whether a unit puts the policy back after each start (not in a comment)', () => {
    expect(restoresForwardAccept(DOCKER_UNIT(true))).toBe(true);
    expect(restoresForwardAccept(DOCKER_UNIT(false))).toBe(false);
    expect(restoresForwardAccept('# ExecStartPost=/usr/sbin/iptables -P FORWARD ACCEPT\n')).toBe(
      false,
    );
  });

  it('fails while the master cannot reach the pod on node1 by its IP', async () => {
    const problems = await fault('forward-drop').problems(lab(node(broken), master('000')).ctx);
    expect(problems).toEqual([
      expect.stringMatching(
        /master cannot reach the pod forward-probe on node1 by its IP 172\.30\.7\.2: curl: \(28\)/,
      ),
    ]);
  });

  it('a policy set to ACCEPT by hand is not enough: Docker sets DROP again at its next start', async () => {
    const problems = await fault('forward-drop').problems(
      lab(node({ ...broken, policy: 'ACCEPT' }), master('200')).ctx,
    );
    expect(problems).toEqual([expect.stringMatching(/only until Docker restarts.*now: ACCEPT/)]);
  });

  it("passes when docker.service puts the policy back, or when flanneld's own rules let pods through", async () => {
    const viaDocker = { ...broken, policy: 'ACCEPT', dockerPost: true };
    expect(await fault('forward-drop').problems(lab(node(viaDocker), master('200')).ctx)).toEqual(
      [],
    );
    const viaFlannel = { ...broken, flannelRules: true, flannelDisabled: false };
    expect(await fault('forward-drop').problems(lab(node(viaFlannel), master('403')).ctx)).toEqual(
      [],
    );
    // Rules added by hand while flanneld is told not to keep them do not last either.
    const handRules = { ...broken, flannelRules: true };
    expect(
      await fault('forward-drop').problems(lab(node(handRules), master('200')).ctx),
    ).toHaveLength(1);
  });

  it('a probe pod that is not running is named, not taken as a network problem', async () => {
    const problems = await fault('forward-drop').problems(
      lab(node(broken), master('200', 'Pending')).ctx,
    );
    expect(problems).toEqual([
      expect.stringContaining('forward-probe on node1 is not running (Pending)'),
    ]);
  });

  it("its repair writes docker's drop-in back and sets the policy, without restarting docker", async () => {
    const { hosts, ctx } = lab(node(broken), master('200'));
    await fault('forward-drop').repair(ctx);
    expect(hosts.node1.files.get('/etc/systemd/system/docker.service.d/klab.conf')).toMatch(
      /^ExecStartPost=\/usr\/sbin\/iptables -P FORWARD ACCEPT$/m,
    );
    const script = hosts.node1.calls.map((call) => call.argv.join(' ')).join('\n');
    expect(script).toContain('iptables -P FORWARD ACCEPT');
    expect(script).toContain(
      'rm -f /etc/systemd/system/flanneld.service.d/klab-lesson-forward.conf',
    );
    expect(script).not.toMatch(/restart docker/);
  });
});

describe('reboot-pending (the reboot lesson)', () => {
  const BOOT_A = '1b7f0c6e-0000-4000-8000-00000000000a';
  const BOOT_B = '1b7f0c6e-0000-4000-8000-00000000000b';
  const gateway = spec.network.managementGateway;
  /** A VM that recorded BOOT_A at the start and is now in `now`, with the routes given. */
  const vmIn =
    (
      now: string,
      defaultRoute = `default via ${gateway} dev eth0`,
      extra: Handler = () => undefined,
    ): Handler =>
    (argv, options) => {
      const line = argv.join(' ');
      if (line.includes('/proc/sys/kernel/random/boot_id') && line.includes('cat ')) {
        return { stdout: `${BOOT_A}\n${now}\n` };
      }
      if (line === 'ip -4 route show default') return { stdout: `${defaultRoute}\n` };
      if (argv[0] === 'curl') return { stdout: '401' };
      return extra(argv, options);
    };
  const healthyMaster: Handler = (argv) => {
    const line = argv.join(' ');
    if (line.includes('get --raw /healthz')) return { stdout: 'ok' };
    if (line.includes('get componentstatuses')) {
      const healthy = (name: string) => ({
        metadata: { name },
        conditions: [{ type: 'Healthy', status: 'True' }],
      });
      return {
        stdout: JSON.stringify({
          items: [healthy('scheduler'), healthy('controller-manager'), healthy('etcd-0')],
        }),
      };
    }
    if (line.includes('get node node1')) return { stdout: READY_NODE };
    return undefined;
  };

  it('records the boot ID on every VM, on disk', async () => {
    const { ctx, hosts } = lab(vmIn(BOOT_A));
    await fault('reboot-pending').inject(ctx);
    for (const host of [hosts.master, hosts.node1]) {
      expect(host.commands().join('\n')).toMatch(
        /cat \/proc\/sys\/kernel\/random\/boot_id > \/var\/lib\/klab\/lesson-boot-id/,
      );
    }
  });

  it('names the VMs not rebooted yet, and asks nothing of the cluster before', async () => {
    const { ctx, hosts } = lab(vmIn(BOOT_A), vmIn(BOOT_B, undefined, healthyMaster));
    expect(await fault('reboot-pending').problems(ctx)).toEqual([
      expect.stringMatching(/^node1 not rebooted since the lesson started/),
    ]);
    expect(hosts.master.commands().join('\n')).not.toContain('healthz');
  });

  it('every VM rebooted: passes when the cluster is back, names what is not', async () => {
    const back = lab(vmIn(BOOT_B), vmIn(BOOT_B, undefined, healthyMaster));
    expect(await fault('reboot-pending').problems(back.ctx)).toEqual([]);
    const noRoute = lab(vmIn(BOOT_B, ''), vmIn(BOOT_B, undefined, healthyMaster));
    expect(await fault('reboot-pending').problems(noRoute.ctx)).toEqual([
      expect.stringContaining('node1 came back without its one default route'),
    ]);
    const apiserverDown = lab(
      vmIn(BOOT_B),
      vmIn(BOOT_B, undefined, (argv) =>
        argv.join(' ').includes('/healthz')
          ? { exitCode: 1, stderr: 'net/http: TLS handshake timeout' }
          : undefined,
      ),
    );
    expect(await fault('reboot-pending').problems(apiserverDown.ctx)).toEqual([
      expect.stringContaining('TLS handshake timeout'),
    ]);
  });
});
