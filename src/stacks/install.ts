/**
 * How a stack's artifacts land on the VMs and which flags its versions take: the data the
 * provisioner steps read, so a step never asks "which stack is this?" itself.
 */
import type { StackName } from '../model/spec.js';
import type { Placement } from '../model/topology.js';
import { parseImageReference, repoTag } from './registry.js';

/** Programs taken out of an archive artifact into /opt/k8s/bin. */
export interface ArchiveInstall {
  artifact: string;
  on: Placement;
  /** Paths inside the archive. */
  members: string[];
}

export interface ImageInstall {
  artifact: string;
  /** The name kubelet and the manifests use. */
  image: string;
  /** A docker-load archive, or a lone static binary that becomes an image (docker import). */
  from: 'docker-archive' | { binary: string; entrypoint: string };
}

export interface InstallProfile {
  stack: StackName;
  /** Kubernetes minor version: flags and config kinds differ between 1.11 and 1.20. */
  kubernetesMinor: number;
  archives: ArchiveInstall[];
  /** Debian packages (etcd and Docker in the mirror-only stack) or static binaries. */
  etcd:
    | { artifact: string; kind: 'deb' }
    | { artifact: string; kind: 'archive'; members: string[] };
  docker: { artifact: string; kind: 'deb' } | { artifact: string; kind: 'static-tgz' };
  /** flannel 0.10 reads its config through the etcd v2 API only. */
  flannelEtcdApi: 'v2' | 'v3';
  pauseImage: ImageInstall;
  testAppImage: ImageInstall;
  ingressImage: ImageInstall;
  /** Cluster DNS: CoreDNS 1.1.3 (kubeadm's for 1.11: proxy, no ready or loop) or 1.10 (forward, ready, loop). */
  dnsImage: ImageInstall;
  coreDnsMinor: 1 | 10;
  /** Traefik 1.7 (extensions/v1beta1 Ingress, --kubernetes) or 2.x (networking.k8s.io/v1). */
  traefikMajor: 1 | 2;
}

function pulled(artifact: string, reference: string): ImageInstall {
  return { artifact, image: repoTag(parseImageReference(reference)), from: 'docker-archive' };
}

const PROFILES: Record<StackName, InstallProfile> = {
  'v1.11.1': {
    stack: 'v1.11.1',
    kubernetesMinor: 11,
    archives: [
      {
        artifact: 'kubernetes-server',
        on: 'masters',
        members: ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'].map(
          (bin) => `kubernetes/server/bin/${bin}`,
        ),
      },
      // kube-proxy runs on every VM (the master reaches ClusterIPs too), the kubelet on nodes.
      { artifact: 'kubernetes-node', on: 'nodes', members: ['kubernetes/node/bin/kubelet'] },
      { artifact: 'kubernetes-node', on: 'all', members: ['kubernetes/node/bin/kube-proxy'] },
      { artifact: 'kubernetes-client', on: 'all', members: ['kubernetes/client/bin/kubectl'] },
      { artifact: 'flannel', on: 'all', members: ['flanneld', 'mk-docker-opts.sh'] },
    ],
    etcd: {
      artifact: 'etcd',
      kind: 'archive',
      members: ['etcd-v3.3.5-linux-amd64/etcd', 'etcd-v3.3.5-linux-amd64/etcdctl'],
    },
    docker: { artifact: 'docker', kind: 'static-tgz' },
    flannelEtcdApi: 'v2',
    pauseImage: pulled('pause-image', 'registry.k8s.io/pause:3.1'),
    testAppImage: pulled('php-apache-image', 'registry-1.docker.io/library/php:7-apache'),
    ingressImage: pulled('traefik-image', 'registry-1.docker.io/library/traefik:v1.7'),
    dnsImage: pulled('coredns-image', 'registry.k8s.io/coredns:1.1.3'),
    coreDnsMinor: 1,
    traefikMajor: 1,
  },
  debian: {
    stack: 'debian',
    kubernetesMinor: 20,
    archives: [
      // One archive, cut per role: masters run the control plane, nodes the kubelet, and
      // every VM kube-proxy (the master reaches ClusterIPs too) and kubectl.
      {
        artifact: 'kubernetes',
        on: 'masters',
        members: ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'].map(
          (bin) => `kubernetes/bin/${bin}`,
        ),
      },
      { artifact: 'kubernetes', on: 'nodes', members: ['kubernetes/bin/kubelet'] },
      {
        artifact: 'kubernetes',
        on: 'all',
        members: ['kube-proxy', 'kubectl'].map((bin) => `kubernetes/bin/${bin}`),
      },
      {
        artifact: 'flannel',
        on: 'all',
        members: ['flannel/flanneld', 'flannel/mk-docker-opts.sh'],
      },
    ],
    etcd: { artifact: 'etcd', kind: 'deb' },
    docker: { artifact: 'docker', kind: 'deb' },
    flannelEtcdApi: 'v3',
    pauseImage: { artifact: 'pause-image', image: 'klab/pause:klab-1', from: 'docker-archive' },
    testAppImage: {
      artifact: 'php-apache-image',
      image: 'klab/php-apache:debian-12-slim',
      from: 'docker-archive',
    },
    ingressImage: {
      artifact: 'traefik',
      image: 'klab/traefik:v2.11.10',
      from: { binary: 'traefik/traefik', entrypoint: '/traefik/traefik' },
    },
    dnsImage: {
      artifact: 'coredns',
      image: 'klab/coredns:v1.10.1',
      from: { binary: 'coredns/coredns', entrypoint: '/coredns/coredns' },
    },
    coreDnsMinor: 10,
    traefikMajor: 2,
  },
};

export function installProfile(stack: StackName): InstallProfile {
  return PROFILES[stack];
}
