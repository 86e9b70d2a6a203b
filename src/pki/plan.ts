/**
 * Which certificates a lab needs, derived purely from the spec. Every entry says who
 * presents it to whom, so `klab certs list` and the docs can explain it.
 */
import { hostAddress, parseCidr } from '../model/net.js';
import type { LabSpec } from '../model/spec.js';
import { etcdMembers, masters as mastersOf, nodes as nodesOf } from '../model/topology.js';

/** The user kube-apiserver is to the kubelets (its client certificate's CN). */
export const APISERVER_KUBELET_USER = 'kube-apiserver-kubelet-client';

export type Usage = 'server' | 'client';
export type CaName = 'ca' | 'etcd-ca' | 'front-proxy-ca';

export interface CaPlan {
  name: CaName;
  commonName: string;
  purpose: string;
}

export interface CertPlan {
  /** File stem under .klab/pki: <name>.crt / <name>.key */
  name: string;
  issuer: CaName;
  commonName: string;
  organizations: string[];
  dnsNames: string[];
  ipAddresses: string[];
  usages: Usage[];
  purpose: string;
  /** The VMs it is installed on (empty: only on the host, e.g. admin). */
  vms: string[];
}

export interface KubeconfigPlan {
  name: string;
  user: string;
  /** Client certificate, or a bootstrap token for TLS bootstrapping. */
  auth: { cert: string } | { bootstrapTokenFor: string };
  purpose: string;
  vms: string[];
}

export interface PkiPlan {
  cas: CaPlan[];
  certs: CertPlan[];
  kubeconfigs: KubeconfigPlan[];
  /** Nodes that get a bootstrap token (one each, so one node can be revoked alone). */
  bootstrapNodes: string[];
  apiserverUrl: string;
}

/** The first address of the service range: the `kubernetes` Service's ClusterIP. */
export function kubernetesServiceIp(spec: LabSpec): string {
  const cidr = parseCidr(spec.network.serviceCidr);
  if (!cidr) throw new Error(`invalid serviceCidr ${spec.network.serviceCidr}`);
  return hostAddress(cidr, 1);
}

export function planPki(spec: LabSpec): PkiPlan {
  const masters = mastersOf(spec);
  const nodes = nodesOf(spec);
  const masterNames = masters.map((vm) => vm.name);
  const etcd = etcdMembers(spec);
  const firstMaster = masters[0];
  if (!firstMaster) throw new Error('a lab needs a master');
  const apiserverUrl = `https://${firstMaster.ip}:6443`;
  const domain = spec.network.clusterDomain;
  const all = spec.vms.map((vm) => vm.name);

  const certs: CertPlan[] = [];
  for (const vm of etcd) {
    certs.push({
      name: `etcd-server-${vm.name}`,
      issuer: 'etcd-ca',
      commonName: `etcd-server-${vm.name}`,
      organizations: [],
      dnsNames: [vm.name, 'localhost'],
      ipAddresses: [vm.ip, '127.0.0.1'],
      usages: ['server', 'client'],
      purpose: `etcd on ${vm.name} presents it to its clients (apiserver, flanneld, etcdctl)`,
      vms: [vm.name],
    });
    certs.push({
      name: `etcd-peer-${vm.name}`,
      issuer: 'etcd-ca',
      commonName: `etcd-peer-${vm.name}`,
      organizations: [],
      dnsNames: [vm.name, 'localhost'],
      ipAddresses: [vm.ip, '127.0.0.1'],
      usages: ['server', 'client'],
      purpose: `etcd on ${vm.name} presents it to the other members (both directions)`,
      vms: [vm.name],
    });
  }
  const client = (
    name: string,
    commonName: string,
    organizations: string[],
    purpose: string,
    vms: string[],
    issuer: CaName = 'ca',
  ): CertPlan => ({
    name,
    issuer,
    commonName,
    organizations,
    dnsNames: [],
    ipAddresses: [],
    usages: ['client'],
    purpose,
    vms,
  });
  certs.push(
    client(
      'etcd-client-apiserver',
      'kube-apiserver-etcd-client',
      [],
      'kube-apiserver presents it to etcd',
      masterNames,
      'etcd-ca',
    ),
    client(
      'etcd-client-flanneld',
      'flanneld',
      [],
      'flanneld on every VM presents it to etcd',
      all,
      'etcd-ca',
    ),
    client(
      'etcd-client-admin',
      'etcd-admin',
      [],
      'you present it to etcd with etcdctl',
      masterNames,
      'etcd-ca',
    ),
    {
      name: 'apiserver',
      issuer: 'ca',
      commonName: 'kube-apiserver',
      organizations: [],
      dnsNames: [
        'kubernetes',
        'kubernetes.default',
        'kubernetes.default.svc',
        `kubernetes.default.svc.${domain}`,
        ...masterNames,
      ],
      ipAddresses: [kubernetesServiceIp(spec), ...masters.map((vm) => vm.ip), '127.0.0.1'],
      usages: ['server'],
      purpose:
        'kube-apiserver presents it to every client (kubectl, kubelets, pods via the kubernetes Service)',
      vms: masterNames,
    },
    // No group: a kubelet asks the apiserver whether this user may use its API, and the
    // answer comes from one RBAC binding (APISERVER_KUBELET_USER in render/manifests.ts),
    // not from cluster-admin powers.
    client(
      'apiserver-kubelet-client',
      APISERVER_KUBELET_USER,
      [],
      'kube-apiserver presents it to kubelets (logs, exec, port-forward)',
      masterNames,
    ),
    client(
      'admin',
      'admin',
      ['system:masters'],
      'you present it to kube-apiserver with kubectl (cluster admin)',
      masterNames,
    ),
    client(
      'kube-controller-manager',
      'system:kube-controller-manager',
      [],
      'kube-controller-manager presents it to kube-apiserver',
      masterNames,
    ),
    client(
      'kube-scheduler',
      'system:kube-scheduler',
      [],
      'kube-scheduler presents it to kube-apiserver',
      masterNames,
    ),
    client(
      'kube-proxy',
      'system:kube-proxy',
      ['system:node-proxier'],
      'kube-proxy presents it to kube-apiserver (every VM runs one, so ClusterIPs work from the master too)',
      all,
    ),
  );
  for (const vm of nodes) {
    certs.push({
      name: `kubelet-${vm.name}`,
      issuer: 'ca',
      commonName: `system:node:${vm.name}`,
      organizations: ['system:nodes'],
      dnsNames: [vm.name],
      ipAddresses: [vm.ip],
      usages: ['server', 'client'],
      purpose: `kubelet on ${vm.name}: to kube-apiserver as a client, and serving its own API (stacks without TLS bootstrapping)`,
      vms: [vm.name],
    });
  }
  certs.push(
    client(
      'front-proxy-client',
      'front-proxy-client',
      [],
      'kube-apiserver presents it to aggregated API servers (metrics-server and the like)',
      masterNames,
      'front-proxy-ca',
    ),
  );

  const kubeconfigs: KubeconfigPlan[] = [
    {
      name: 'admin',
      user: 'admin',
      auth: { cert: 'admin' },
      purpose: 'kubectl as cluster admin',
      vms: masterNames,
    },
    {
      name: 'kube-controller-manager',
      user: 'system:kube-controller-manager',
      auth: { cert: 'kube-controller-manager' },
      purpose: 'kube-controller-manager --kubeconfig',
      vms: masterNames,
    },
    {
      name: 'kube-scheduler',
      user: 'system:kube-scheduler',
      auth: { cert: 'kube-scheduler' },
      purpose: 'kube-scheduler --kubeconfig',
      vms: masterNames,
    },
    {
      name: 'kube-proxy',
      user: 'system:kube-proxy',
      auth: { cert: 'kube-proxy' },
      purpose: 'kube-proxy clientConnection.kubeconfig',
      vms: all,
    },
    ...nodes.map((vm) => ({
      name: `kubelet-${vm.name}`,
      user: `system:node:${vm.name}`,
      auth: { cert: `kubelet-${vm.name}` },
      purpose: `kubelet --kubeconfig on ${vm.name} (pre-issued certificate)`,
      vms: [vm.name],
    })),
    ...nodes.map((vm) => ({
      name: `bootstrap-${vm.name}`,
      user: `kubelet-bootstrap-${vm.name}`,
      auth: { bootstrapTokenFor: vm.name },
      purpose: `kubelet --bootstrap-kubeconfig on ${vm.name} (TLS bootstrapping: asks for its own certificate)`,
      vms: [vm.name],
    })),
  ];

  return {
    cas: [
      {
        name: 'ca',
        commonName: `klab-${spec.name}-ca`,
        purpose: 'signs every lab certificate; everyone trusts it',
      },
      {
        name: 'etcd-ca',
        commonName: `klab-${spec.name}-etcd-ca`,
        purpose:
          'signs etcd members and the few clients that may talk to etcd (apiserver, flanneld, your etcdctl); etcd trusts nothing else',
      },
      {
        name: 'front-proxy-ca',
        commonName: `klab-${spec.name}-front-proxy-ca`,
        purpose: 'signs the front-proxy client only (API aggregation)',
      },
    ],
    certs,
    kubeconfigs,
    bootstrapNodes: nodes.map((vm) => vm.name),
    apiserverUrl,
  };
}
