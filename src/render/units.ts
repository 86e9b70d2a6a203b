/**
 * systemd units and component configs for the cluster, rendered from the lab spec and the
 * stack's install profile. Pure: data in, text out; golden-tested.
 *
 * Every long-running unit restarts forever (Restart=always, RestartSec=5,
 * StartLimitIntervalSec=0): after a reboot the apiserver may start before etcd has
 * quorum, and systemd's default start limit would leave it failed for good.
 */

import type { LabSpec, VmPlan } from '../model/spec.js';
import type { ClusterTuning } from '../model/tuning.js';
import { kubernetesServiceIp } from '../pki/plan.js';
import { GUEST, type InstallProfile } from '../stacks/install.js';

const PKI = GUEST.pki;
const ETCD_PKI = GUEST.etcdPki;
const K8S = GUEST.k8sDir;
const BIN = GUEST.bin;

function flags(list: readonly (string | false | undefined)[]): string {
  return list.filter((flag): flag is string => Boolean(flag)).join(' \\\n  ');
}

interface UnitParts {
  description: string;
  docs?: string;
  after: string[];
  wants?: string[];
  requires?: string[];
  before?: string[];
  type?: 'notify' | 'simple';
  user?: string;
  execStart: string;
  execStartPost?: string[];
  environmentFile?: string;
  limitNofile?: boolean;
}

function unit(parts: UnitParts): string {
  const lines = [
    '# Managed by klab: klab create rewrites this file.',
    '[Unit]',
    `Description=${parts.description}`,
    ...(parts.docs ? [`Documentation=${parts.docs}`] : []),
    `After=${parts.after.join(' ')}`,
    ...(parts.wants?.length ? [`Wants=${parts.wants.join(' ')}`] : []),
    ...(parts.requires?.length ? [`Requires=${parts.requires.join(' ')}`] : []),
    ...(parts.before?.length ? [`Before=${parts.before.join(' ')}`] : []),
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    `Type=${parts.type ?? 'simple'}`,
    ...(parts.user ? [`User=${parts.user}`] : []),
    ...(parts.environmentFile ? [`EnvironmentFile=${parts.environmentFile}`] : []),
    `ExecStart=${parts.execStart}`,
    ...(parts.execStartPost ?? []).map((line) => `ExecStartPost=${line}`),
    'Restart=always',
    'RestartSec=5',
    ...(parts.limitNofile ? ['LimitNOFILE=65536'] : []),
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}

export function etcdMembers(spec: LabSpec): VmPlan[] {
  return spec.vms.filter((vm) => spec.etcdMembers.includes(vm.name));
}

export function etcdEndpoints(spec: LabSpec): string {
  return etcdMembers(spec)
    .map((vm) => `https://${vm.ip}:2379`)
    .join(',');
}

export function firstMaster(spec: LabSpec): VmPlan {
  const master = spec.vms.find((vm) => vm.role === 'master');
  if (!master) throw new Error('a lab needs a master');
  return master;
}

/** The etcd binary's path: Debian packages put it in /usr/bin, archives in /opt/k8s/bin. */
export function etcdBinary(profile: InstallProfile, name: 'etcd' | 'etcdctl'): string {
  return profile.etcd.kind === 'deb' ? `/usr/bin/${name}` : `${BIN}/${name}`;
}

export function renderEtcdUnit(
  spec: LabSpec,
  profile: InstallProfile,
  vm: VmPlan,
  tuning: ClusterTuning,
): string {
  const cluster = etcdMembers(spec)
    .map((member) => `${member.name}=https://${member.ip}:2380`)
    .join(',');
  return unit({
    description: `etcd member ${vm.name} (klab lab ${spec.name})`,
    docs: 'https://etcd.io/docs/',
    after: ['network-online.target'],
    wants: ['network-online.target'],
    type: 'notify',
    user: 'etcd',
    limitNofile: true,
    execStart: `${etcdBinary(profile, 'etcd')} ${flags([
      `--name=${vm.name}`,
      `--data-dir=${GUEST.etcdData}`,
      `--listen-client-urls=https://${vm.ip}:2379,https://127.0.0.1:2379`,
      `--advertise-client-urls=https://${vm.ip}:2379`,
      `--listen-peer-urls=https://${vm.ip}:2380`,
      `--initial-advertise-peer-urls=https://${vm.ip}:2380`,
      `--initial-cluster=${cluster}`,
      `--initial-cluster-token=klab-${spec.name}`,
      '--initial-cluster-state=new',
      `--cert-file=${ETCD_PKI}/etcd-server-${vm.name}.crt`,
      `--key-file=${ETCD_PKI}/etcd-server-${vm.name}.key`,
      `--peer-cert-file=${ETCD_PKI}/etcd-peer-${vm.name}.crt`,
      `--peer-key-file=${ETCD_PKI}/etcd-peer-${vm.name}.key`,
      // etcd's own CA (as kubeadm does): certificates of the lab CA are refused.
      `--trusted-ca-file=${ETCD_PKI}/etcd-ca.crt`,
      `--peer-trusted-ca-file=${ETCD_PKI}/etcd-ca.crt`,
      '--client-cert-auth=true',
      '--peer-client-cert-auth=true',
      // Raft timing follows the hypervisor (src/core/tuning.ts): a starved TCG guest must
      // not look like a dead leader.
      `--heartbeat-interval=${tuning.etcdHeartbeatMs}`,
      `--election-timeout=${tuning.etcdElectionMs}`,
      // etcd 3.4 serves the v2 API only when asked; flannel 0.10 needs it.
      profile.flannelEtcdApi === 'v2' && profile.etcd.kind === 'deb' && '--enable-v2=true',
    ])}`,
  });
}

export const FLANNEL_PREFIX = '/coreos.com/network';

/** The network config flanneld reads from etcd. */
export function renderFlannelConfig(spec: LabSpec): string {
  return JSON.stringify({
    Network: spec.network.podCidr,
    SubnetLen: 24,
    Backend: { Type: 'vxlan' },
  });
}

export function renderFlannelUnit(spec: LabSpec, vm: VmPlan): string {
  return unit({
    description: 'flanneld: the pod network overlay (vxlan), subnets leased from etcd',
    docs: 'https://github.com/flannel-io/flannel',
    after: ['network-online.target'],
    wants: ['network-online.target'],
    before: ['docker.service'],
    type: 'notify',
    execStart: `${BIN}/flanneld ${flags([
      `-etcd-endpoints=${etcdEndpoints(spec)}`,
      `-etcd-cafile=${PKI}/etcd-ca.crt`,
      `-etcd-certfile=${PKI}/etcd-client-flanneld.crt`,
      `-etcd-keyfile=${PKI}/etcd-client-flanneld.key`,
      `-etcd-prefix=${FLANNEL_PREFIX}`,
      // eth0 is the management (NAT) network: the overlay must use the private one.
      `-iface=${vm.ip}`,
      '-ip-masq',
    ])}`,
    // Docker reads --bip/--mtu/--ip-masq from here (see the docker drop-in).
    execStartPost: [`${BIN}/mk-docker-opts.sh -k DOCKER_NETWORK_OPTIONS -d /run/flannel/docker`],
  });
}

export function renderDockerDropIn(profile: InstallProfile): string {
  const dockerd = profile.docker.kind === 'deb' ? '/usr/sbin/dockerd' : '/usr/bin/dockerd';
  const containerd =
    profile.docker.kind === 'deb' ? ' --containerd=/run/containerd/containerd.sock' : '';
  return [
    '# Managed by klab: Docker starts after flanneld and takes its subnet for docker0.',
    '[Unit]',
    'After=flanneld.service network-online.target',
    'Requires=flanneld.service',
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'EnvironmentFile=/run/flannel/docker',
    'ExecStart=',
    `ExecStart=${dockerd} -H unix:///var/run/docker.sock${containerd} $DOCKER_NETWORK_OPTIONS`,
    // Docker >= 1.13 sets the FORWARD policy to DROP, which drops pod traffic between VMs.
    'ExecStartPost=/usr/sbin/iptables -P FORWARD ACCEPT',
    'Restart=always',
    'RestartSec=5',
    '',
  ].join('\n');
}

export function renderDockerDaemonJson(): string {
  return `${JSON.stringify(
    {
      'exec-opts': ['native.cgroupdriver=cgroupfs'],
      'log-driver': 'json-file',
      'log-opts': { 'max-size': '10m', 'max-file': '3' },
      'storage-driver': 'overlay2',
    },
    null,
    2,
  )}\n`;
}

export function renderApiserverUnit(spec: LabSpec, profile: InstallProfile, vm: VmPlan): string {
  const v11 = profile.kubernetesMinor < 13;
  return unit({
    description: 'Kubernetes API server',
    docs: 'https://kubernetes.io/docs/reference/command-line-tools-reference/kube-apiserver/',
    after: ['network-online.target', 'etcd.service'],
    wants: ['network-online.target'],
    limitNofile: true,
    execStart: `${BIN}/kube-apiserver ${flags([
      `--advertise-address=${vm.ip}`,
      // All addresses: binding the private IP fails when it is not up yet after a reboot.
      '--bind-address=0.0.0.0',
      '--secure-port=6443',
      '--insecure-port=0',
      `--etcd-servers=${etcdEndpoints(spec)}`,
      `--etcd-cafile=${PKI}/etcd-ca.crt`,
      `--etcd-certfile=${PKI}/etcd-client-apiserver.crt`,
      `--etcd-keyfile=${PKI}/etcd-client-apiserver.key`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,ResourceQuota,NodeRestriction',
      '--anonymous-auth=false',
      '--enable-bootstrap-token-auth=true',
      `--client-ca-file=${PKI}/ca.crt`,
      `--tls-cert-file=${PKI}/apiserver.crt`,
      `--tls-private-key-file=${PKI}/apiserver.key`,
      `--kubelet-client-certificate=${PKI}/apiserver-kubelet-client.crt`,
      `--kubelet-client-key=${PKI}/apiserver-kubelet-client.key`,
      `--kubelet-certificate-authority=${PKI}/ca.crt`,
      '--kubelet-preferred-address-types=InternalIP,Hostname',
      `--service-account-key-file=${PKI}/sa.pub`,
      !v11 && `--service-account-signing-key-file=${PKI}/sa.key`,
      !v11 &&
        `--service-account-issuer=https://kubernetes.default.svc.${spec.network.clusterDomain}`,
      `--service-cluster-ip-range=${spec.network.serviceCidr}`,
      '--service-node-port-range=30000-32767',
      `--${v11 ? 'experimental-' : ''}encryption-provider-config=${K8S}/encryption-config.yaml`,
      '--allow-privileged=true',
      `--requestheader-client-ca-file=${PKI}/front-proxy-ca.crt`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-username-headers=X-Remote-User',
      `--proxy-client-cert-file=${PKI}/front-proxy-client.crt`,
      `--proxy-client-key-file=${PKI}/front-proxy-client.key`,
      '--event-ttl=1h',
    ])}`,
  });
}

/**
 * No leader election: klab builds exactly one master (klab.yaml refuses more), and a lone
 * controller manager or scheduler only risks losing a lease it cannot share: on a loaded
 * host under software emulation a late renewal made the controller manager exit, and no
 * node CSR got approved.
 */
const LEADER_ELECTION = ['--leader-elect=false'];

export function renderControllerManagerUnit(spec: LabSpec, tuning: ClusterTuning): string {
  return unit({
    description: 'Kubernetes controller manager',
    docs: 'https://kubernetes.io/docs/reference/command-line-tools-reference/kube-controller-manager/',
    after: ['network-online.target', 'kube-apiserver.service'],
    wants: ['network-online.target'],
    execStart: `${BIN}/kube-controller-manager ${flags([
      `--kubeconfig=${K8S}/kube-controller-manager.kubeconfig`,
      // Loopback only: `kubectl get componentstatuses` probes 127.0.0.1:10252.
      '--address=127.0.0.1',
      ...LEADER_ELECTION,
      '--use-service-account-credentials=true',
      // Without these no certificate signing request (TLS bootstrap) is ever signed.
      `--cluster-signing-cert-file=${PKI}/ca.crt`,
      `--cluster-signing-key-file=${PKI}/ca.key`,
      '--controllers=*,bootstrapsigner,tokencleaner',
      `--service-account-private-key-file=${PKI}/sa.key`,
      `--root-ca-file=${PKI}/ca.crt`,
      `--service-cluster-ip-range=${spec.network.serviceCidr}`,
      // Under load a kubelet's status update can be late; do not call the node NotReady for it.
      `--node-monitor-grace-period=${tuning.nodeMonitorGracePeriodS}s`,
    ])}`,
  });
}

export function renderSchedulerUnit(): string {
  return unit({
    description: 'Kubernetes scheduler',
    docs: 'https://kubernetes.io/docs/reference/command-line-tools-reference/kube-scheduler/',
    after: ['network-online.target', 'kube-apiserver.service'],
    wants: ['network-online.target'],
    execStart: `${BIN}/kube-scheduler ${flags([
      `--kubeconfig=${K8S}/kube-scheduler.kubeconfig`,
      '--address=127.0.0.1',
      ...LEADER_ELECTION,
    ])}`,
  });
}

export const KUBELET_CERT_DIR = '/var/lib/kubelet/pki';

export function renderKubeletConfig(
  spec: LabSpec,
  vm: VmPlan,
  options: { resolvConf: string },
): string {
  const lines = [
    '# Managed by klab.',
    'kind: KubeletConfiguration',
    'apiVersion: kubelet.config.k8s.io/v1beta1',
    `address: ${vm.ip}`,
    'authentication:',
    '  anonymous:',
    '    enabled: false',
    '  webhook:',
    '    enabled: true',
    '  x509:',
    `    clientCAFile: ${PKI}/ca.crt`,
    'authorization:',
    '  mode: Webhook',
    'cgroupDriver: cgroupfs',
    `clusterDomain: ${spec.network.clusterDomain}`,
    'readOnlyPort: 0',
    // The serving certificate klab issued (kubelet serving CSRs are never auto-approved);
    // the client certificate comes from TLS bootstrapping and rotates.
    `tlsCertFile: ${PKI}/kubelet-${vm.name}.crt`,
    `tlsPrivateKeyFile: ${PKI}/kubelet-${vm.name}.key`,
    'rotateCertificates: true',
    'failSwapOn: true',
    `resolvConf: ${options.resolvConf}`,
    '',
  ];
  return lines.join('\n');
}

export function renderKubeletUnit(profile: InstallProfile, vm: VmPlan): string {
  return unit({
    description: 'Kubernetes kubelet',
    docs: 'https://kubernetes.io/docs/reference/command-line-tools-reference/kubelet/',
    after: ['docker.service', 'network-online.target'],
    wants: ['network-online.target'],
    requires: ['docker.service'],
    execStart: `${BIN}/kubelet ${flags([
      `--config=${K8S}/kubelet-config.yaml`,
      `--bootstrap-kubeconfig=${K8S}/bootstrap.kubeconfig`,
      `--kubeconfig=${K8S}/kubelet.kubeconfig`,
      `--cert-dir=${KUBELET_CERT_DIR}`,
      `--hostname-override=${vm.name}`,
      `--node-ip=${vm.ip}`,
      `--pod-infra-container-image=${profile.pauseImage.image}`,
      profile.kubernetesMinor < 15 && '--allow-privileged=true',
    ])}`,
  });
}

export function renderKubeProxyConfig(spec: LabSpec, vm: VmPlan): string {
  return [
    '# Managed by klab.',
    'kind: KubeProxyConfiguration',
    'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
    `bindAddress: ${vm.ip}`,
    'clientConnection:',
    `  kubeconfig: ${K8S}/kube-proxy.kubeconfig`,
    `clusterCIDR: ${spec.network.podCidr}`,
    `healthzBindAddress: ${vm.ip}:10256`,
    'metricsBindAddress: 127.0.0.1:10249',
    `hostnameOverride: ${vm.name}`,
    'mode: iptables',
    '',
  ].join('\n');
}

export function renderKubeProxyUnit(): string {
  return unit({
    description: 'Kubernetes kube-proxy (Service ClusterIPs via iptables)',
    docs: 'https://kubernetes.io/docs/reference/command-line-tools-reference/kube-proxy/',
    after: ['network-online.target', 'flanneld.service'],
    wants: ['network-online.target'],
    limitNofile: true,
    execStart: `${BIN}/kube-proxy --config=${K8S}/kube-proxy-config.yaml`,
  });
}

/** Kernel modules and sysctls every VM needs, persisted so a reboot keeps them. */
export const KERNEL_MODULES = ['overlay', 'br_netfilter', 'vxlan'];

export function renderModulesLoad(): string {
  return `# Managed by klab.\n${KERNEL_MODULES.join('\n')}\n`;
}

export const SYSCTLS: Record<string, string> = {
  'net.bridge.bridge-nf-call-iptables': '1',
  'net.bridge.bridge-nf-call-ip6tables': '1',
  'net.ipv4.ip_forward': '1',
  'vm.swappiness': '0',
};

export function renderSysctl(): string {
  return `# Managed by klab.\n${Object.entries(SYSCTLS)
    .map(([key, value]) => `${key} = ${value}`)
    .join('\n')}\n`;
}

export function renderProfilePath(): string {
  return `# Managed by klab: the lab's Kubernetes programs.\nexport PATH="${BIN}:$PATH"\n`;
}

export { kubernetesServiceIp };
