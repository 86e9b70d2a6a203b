import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import {
  renderApiserverUnit,
  renderControllerManagerUnit,
  renderSchedulerUnit,
} from '../../../provision/control-plane/index.js';
import { renderDockerDaemonJson, renderDockerDropIn } from '../../../provision/docker/index.js';
import { renderEtcdUnit } from '../../../provision/etcd/index.js';
import { renderFlannelConfig, renderFlannelUnit } from '../../../provision/flannel/index.js';
import { renderKubeProxyConfig, renderKubeProxyUnit } from '../../../provision/kube-proxy/index.js';
import { renderKubeletConfig, renderKubeletUnit } from '../../../provision/kubelet/index.js';
import { clusterTuning } from '../../../src/model/tuning.js';
import {
  renderClusterDns,
  renderIngress,
  renderTestApp,
  renderTlsBootstrap,
} from '../../../src/render/manifests.js';
import { installProfile } from '../../../src/stacks/install.js';
import { expectGolden } from '../../helpers/golden.js';
import { defaultSpec } from '../../helpers/specs.js';

const spec = defaultSpec();
const tcg = clusterTuning(spec, 'tcg');
function vm(name: string) {
  const found = spec.vms.find((entry) => entry.name === name);
  if (!found) throw new Error(`no VM ${name}`);
  return found;
}
const master = vm('master');
const node1 = vm('node1');

const PROVISION = path.resolve(import.meta.dirname, '..', '..', '..', 'provision');

/**
 * What each module writes on the default lab, as files a learner can open:
 * provision/<module>/golden/<stack>/<file>, next to the templates they come from.
 */
function moduleFiles(stack: 'debian' | 'v1.11.1'): [string, string, string][] {
  const profile = installProfile(stack);
  return [
    ['etcd', 'etcd.service', renderEtcdUnit(spec, profile, master, tcg)],
    ['flannel', 'flannel-network.json', renderFlannelConfig(spec)],
    ['flannel', 'flanneld.service', renderFlannelUnit(spec, node1, profile, tcg)],
    ['docker', 'klab.conf', renderDockerDropIn(profile)],
    ['docker', 'daemon.json', renderDockerDaemonJson()],
    ['control-plane', 'kube-apiserver.service', renderApiserverUnit(spec, profile, master)],
    ['control-plane', 'kube-controller-manager.service', renderControllerManagerUnit(spec, tcg)],
    ['control-plane', 'kube-scheduler.service', renderSchedulerUnit()],
    [
      'kubelet',
      'kubelet-config.yaml',
      renderKubeletConfig(spec, node1, {
        resolvConf: '/etc/resolv.conf',
        runtimeRequestTimeoutS: tcg.kubeletRuntimeRequestTimeoutS,
      }),
    ],
    ['kubelet', 'kubelet.service', renderKubeletUnit(profile, node1)],
    ['kube-proxy', 'kube-proxy-config.yaml', renderKubeProxyConfig(spec, node1)],
    ['kube-proxy', 'kube-proxy.service', renderKubeProxyUnit()],
  ];
}

describe('provisioner module templates', () => {
  for (const stack of ['debian', 'v1.11.1'] as const) {
    it(`render the default lab on the ${stack} stack as the golden files in each module`, () => {
      for (const [module, file, text] of moduleFiles(stack)) {
        expectGolden(path.join(PROVISION, module, 'golden', stack, file), text);
      }
    });
  }

  it('render the test app and the ingress (golden)', () => {
    for (const stack of ['debian', 'v1.11.1'] as const) {
      const profile = installProfile(stack);
      const text = `${renderTestApp({ profile, replicas: 3 })}\n---\n${renderIngress(profile)}`;
      expectGolden(`manifests-${stack}.txt`, text);
    }
  });

  it('every unit restarts forever and waits for the network (reboot-proof)', () => {
    const profile = installProfile('debian');
    for (const text of [
      renderEtcdUnit(spec, profile, master, tcg),
      renderFlannelUnit(spec, node1, installProfile('debian'), tcg),
      renderApiserverUnit(spec, profile, master),
      renderControllerManagerUnit(spec, tcg),
      renderSchedulerUnit(),
      renderKubeletUnit(profile, node1),
      renderKubeProxyUnit(),
    ]) {
      expect(text).toContain('Restart=always');
      expect(text).toMatch(/^RestartSec=(5|10)$/m);
      expect(text).toContain('StartLimitIntervalSec=0');
      expect(text).toMatch(/After=.*network-online\.target/);
      expect(text).toContain('WantedBy=multi-user.target');
    }
    expect(renderEtcdUnit(spec, profile, master, tcg)).toContain('Type=notify');
    // The controller manager waits, bounded, for the API server instead of crash-looping.
    const kcm = renderControllerManagerUnit(spec, tcg);
    // Bounded by the clock, well inside the start timeout, however slow each kubectl is
    // (a bound by tries outlasted the timeout on a loaded host and failed the start job).
    const pre = /^ExecStartPre=.*get --raw=\/healthz.*$/m.exec(kcm)?.[0] ?? '';
    const waitS = Number(/\+ (\d+)\)\); until /.exec(pre)?.[1]);
    const startS = Number(/^TimeoutStartSec=(\d+)$/m.exec(kcm)?.[1]);
    expect(pre).toMatch(/-ge \$\$end \]; then .*exit 0/);
    expect(pre).toContain('--request-timeout=10s');
    expect(waitS + 10 + 30).toBeLessThan(startS); // the last try: its timeout and a slow start
    expect(pre).not.toMatch(/[^$]\$[a-z(]/); // systemd would expand a lone $end or $(...)
    expect(pre).not.toMatch(/[^%]%s/); // nor a lone %s (a unit specifier)
  });

  it('the apiserver reads and watches through the etcd member on its own VM; without one, through every member', () => {
    const local = renderApiserverUnit(spec, installProfile('debian'), master);
    expect(local).toContain(`--etcd-servers=https://${master.ip}:2379 \\`);
    expect(local).toContain('only this one answers the API server');
    // A lab whose members are the nodes only: the master has no member of its own.
    const away = { ...spec, etcdMembers: ['node1', 'node2', 'node3'] };
    const remote = renderApiserverUnit(away, installProfile('debian'), master);
    const servers = /--etcd-servers=(\S+) /.exec(remote)?.[1];
    expect(servers).toBe(
      ['node1', 'node2', 'node3'].map((name) => `https://${vm(name).ip}:2379`).join(','),
    );
    expect(remote).not.toContain('only this one answers');
  });

  it("flanneld checks its iptables rules every minute under TCG (the debian stack's flannel), as flannel does by default with KVM", () => {
    const debian = installProfile('debian');
    expect(renderFlannelUnit(spec, node1, debian, tcg)).toMatch(
      /-ip-masq \\\n {2}-iptables-resync=60\n/,
    );
    const kvm = clusterTuning(spec, 'kvm');
    expect(renderFlannelUnit(spec, node1, debian, kvm)).not.toContain('-iptables-resync');
    // flannel 0.10 (the v1.11.1 stack) keeps its own default.
    expect(renderFlannelUnit(spec, node1, installProfile('v1.11.1'), tcg)).not.toContain(
      '-iptables-resync',
    );
  });

  it('the apiserver has no insecure port, anonymous access or plain Secrets; flags follow the stack', () => {
    const v120 = renderApiserverUnit(spec, installProfile('debian'), master);
    const v111 = renderApiserverUnit(spec, installProfile('v1.11.1'), master);
    for (const text of [v120, v111]) {
      expect(text).toContain('--insecure-port=0');
      expect(text).toContain('--anonymous-auth=false');
      expect(text).toContain('--authorization-mode=Node,RBAC');
      expect(text).toContain('--enable-bootstrap-token-auth=true');
      expect(text).toContain(`--advertise-address=${master.ip}`);
      expect(text).not.toContain('192.168.121.');
    }
    expect(v120).toContain('--encryption-provider-config=');
    expect(v120).toContain('--service-account-issuer=');
    expect(v111).toContain('--experimental-encryption-provider-config=');
    expect(v111).not.toContain('--service-account-issuer');
    expect(renderKubeletUnit(installProfile('v1.11.1'), node1)).toContain(
      '--allow-privileged=true',
    );
    expect(renderKubeletUnit(installProfile('debian'), node1)).not.toContain('--allow-privileged');
  });

  it('elects no leader: klab builds one master, and a lone one would lose its lease under load', () => {
    expect(renderControllerManagerUnit(spec, tcg)).toContain('--leader-elect=false');
    expect(renderSchedulerUnit()).toContain('--leader-elect=false');
  });

  it('etcd and node timing follow the hypervisor, and klab.yaml wins', () => {
    const kvm = clusterTuning(spec, 'kvm');
    expect(renderEtcdUnit(spec, installProfile('debian'), master, kvm)).toContain(
      '--heartbeat-interval=100',
    );
    const slow = renderEtcdUnit(spec, installProfile('debian'), master, tcg);
    expect(slow).toContain('--heartbeat-interval=1000');
    expect(slow).toContain('--election-timeout=10000');
    expect(renderControllerManagerUnit(spec, tcg)).toContain('--node-monitor-grace-period=120s');
    expect(renderControllerManagerUnit(spec, kvm)).toContain('--node-monitor-grace-period=40s');
    const set = clusterTuning({ ...spec, etcdTiming: { heartbeatMs: 300 } }, 'tcg');
    expect([set.etcdHeartbeatMs, set.etcdElectionMs]).toEqual([300, 3000]);
    const both = clusterTuning(
      { ...spec, etcdTiming: { heartbeatMs: 200, electionMs: 4000 } },
      'kvm',
    );
    expect([both.etcdHeartbeatMs, both.etcdElectionMs]).toEqual([200, 4000]);
    expect(clusterTuning(spec, undefined).accelerator).toBe('tcg');
  });

  it('pins every component to the private network', () => {
    expect(renderFlannelUnit(spec, node1, installProfile('debian'), tcg)).toContain(
      `-iface=${node1.ip}`,
    );
    expect(renderKubeletUnit(installProfile('debian'), node1)).toContain(`--node-ip=${node1.ip}`);
    expect(renderKubeProxyConfig(spec, node1)).toContain(`bindAddress: ${node1.ip}`);
    expect(renderEtcdUnit(spec, installProfile('debian'), master, tcg)).toContain(
      `--initial-advertise-peer-urls=https://${master.ip}:2380`,
    );
  });

  it('render the cluster DNS add-on of each stack (golden): CoreDNS 1.10 on debian, 1.1.3 as kubeadm 1.11 had it', () => {
    for (const stack of ['debian', 'v1.11.1'] as const) {
      expectGolden(`cluster-dns-${stack}.txt`, renderClusterDns(spec, installProfile(stack)));
    }
    const docs = (stack: 'debian' | 'v1.11.1') =>
      YAML.parseAllDocuments(renderClusterDns(spec, installProfile(stack))).map((doc) =>
        doc.toJSON(),
      );
    const service = docs('debian').find((doc) => doc.kind === 'Service');
    // The address every kubelet writes into pods' resolv.conf: the tenth of the service range.
    expect(service.spec.clusterIP).toBe('10.254.0.10');
    expect(service.metadata.name).toBe('kube-dns');
    const kubelet = YAML.parse(
      renderKubeletConfig(spec, node1, {
        resolvConf: '/etc/resolv.conf',
        runtimeRequestTimeoutS: tcg.kubeletRuntimeRequestTimeoutS,
      }),
    );
    expect(kubelet.clusterDNS).toEqual([service.spec.clusterIP]);
    expect(kubelet.clusterDomain).toBe('cluster.local');
    const corefile = (stack: 'debian' | 'v1.11.1') =>
      docs(stack).find((doc) => doc.kind === 'ConfigMap').data.Corefile as string;
    expect(corefile('debian')).toMatch(/kubernetes cluster\.local in-addr\.arpa ip6\.arpa/);
    expect(corefile('debian')).toMatch(/^\s+forward \. \/etc\/resolv\.conf$/m);
    expect(corefile('debian')).toMatch(/^\s+ready$/m);
    // 1.1.3 has neither forward nor ready: proxy, and readiness from /health.
    expect(corefile('v1.11.1')).toMatch(/^\s+proxy \. \/etc\/resolv\.conf$/m);
    expect(corefile('v1.11.1')).not.toMatch(/ready|forward|loop/);
    const container = (stack: 'debian' | 'v1.11.1') =>
      docs(stack).find((doc) => doc.kind === 'Deployment').spec.template.spec.containers[0];
    expect(container('debian').image).toBe('klab/coredns:v1.10.1');
    expect(container('debian').readinessProbe.httpGet).toMatchObject({
      path: '/ready',
      port: 8181,
    });
    expect(container('v1.11.1').image).toBe('registry.k8s.io/coredns:1.1.3');
    expect(container('v1.11.1').readinessProbe.httpGet).toMatchObject({ path: '/health' });
    // Never its own resolver: the node's.
    expect(
      docs('debian').find((doc) => doc.kind === 'Deployment').spec.template.spec.dnsPolicy,
    ).toBe('Default');
    const role = docs('debian').find((doc) => doc.kind === 'ClusterRole');
    expect(JSON.stringify(role.rules)).toContain('endpointslices');
  });

  it("the kubelet lets a call into Docker take 10 min under TCG (a sandbox killed at 2 min only starts over), Kubernetes' 2 min with KVM", () => {
    const timeout = (accelerator: 'tcg' | 'kvm') =>
      YAML.parse(
        renderKubeletConfig(spec, node1, {
          resolvConf: '/etc/resolv.conf',
          runtimeRequestTimeoutS: clusterTuning(spec, accelerator).kubeletRuntimeRequestTimeoutS,
        }),
      ).runtimeRequestTimeout;
    expect(timeout('tcg')).toBe('600s');
    expect(timeout('kvm')).toBe('120s');
  });

  it('the kubelet config parses, and the manifests are valid YAML documents', () => {
    const config = YAML.parse(
      renderKubeletConfig(spec, node1, {
        resolvConf: '/etc/resolv.conf',
        runtimeRequestTimeoutS: tcg.kubeletRuntimeRequestTimeoutS,
      }),
    );
    expect(config.authentication.anonymous.enabled).toBe(false);
    expect(config.authorization.mode).toBe('Webhook');
    expect(config.readOnlyPort).toBe(0);
    const docs = YAML.parseAllDocuments(
      renderTestApp({ profile: installProfile('debian'), replicas: 3 }),
    );
    expect(docs.map((doc) => doc.get('kind'))).toEqual([
      'Namespace',
      'ConfigMap',
      'Deployment',
      'Service',
      'Ingress',
    ]);
    const ingress = YAML.parseAllDocuments(renderIngress(installProfile('v1.11.1')));
    expect(ingress.map((doc) => doc.get('kind'))).not.toContain('IngressClass');
  });

  it('TLS bootstrap: one token Secret per node, its three bindings, and the apiserver to kubelet binding', () => {
    const text = renderTlsBootstrap([
      { id: 'abcdef', secret: '0123456789abcdef', node: 'node1' },
      { id: 'ghijkl', secret: 'fedcba9876543210', node: 'node2' },
    ]);
    const docs = YAML.parseAllDocuments(text).map((doc) => doc.toJSON());
    const secrets = docs.filter((doc) => doc.kind === 'Secret');
    expect(secrets.map((doc) => doc.metadata.name)).toEqual([
      'bootstrap-token-abcdef',
      'bootstrap-token-ghijkl',
    ]);
    expect(secrets[0].type).toBe('bootstrap.kubernetes.io/token');
    expect(secrets[0].stringData['usage-bootstrap-authentication']).toBe('true');
    const roles = docs
      .filter((doc) => doc.kind === 'ClusterRoleBinding')
      .map((doc) => doc.roleRef.name);
    expect(roles).toEqual([
      'system:node-bootstrapper',
      'system:certificates.k8s.io:certificatesigningrequests:nodeclient',
      'system:certificates.k8s.io:certificatesigningrequests:selfnodeclient',
      'system:kubelet-api-admin',
    ]);
    const toKubelet = docs.find((doc) => doc.roleRef?.name === 'system:kubelet-api-admin');
    expect(toKubelet.subjects).toEqual([
      {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'User',
        name: 'kube-apiserver-kubelet-client',
      },
    ]);
  });
});
