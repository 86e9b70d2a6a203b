/** The tutorial's stack. Kubernetes checksums: CHANGELOG-1.11.md, "Downloads for v1.11.1". */
import { registryImage, type StackInput } from './manifest.js';

const FIRST_DOWNLOAD =
  'none published that klab could verify: pinned on the first verified download (klab.lock.json)';

export const v1_11_1: StackInput = {
  name: 'v1.11.1',
  title:
    "The tutorial's stack: Kubernetes v1.11.1, etcd v3.3.5, flannel v0.10.0, Docker 18.03.0-ce",
  versions: { kubernetes: 'v1.11.1', etcd: 'v3.3.5', flannel: 'v0.10.0', docker: '18.03.0-ce' },
  differences: [],
  artifacts: [
    {
      id: 'kubernetes-server',
      kind: 'archive',
      version: 'v1.11.1',
      description:
        'kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl, hyperkube',
      file: 'kubernetes-server-linux-amd64.tar.gz',
      source: {
        type: 'download',
        base: 'k8s',
        path: 'v1.11.1/kubernetes-server-linux-amd64.tar.gz',
      },
      sha256: 'f120baa4b37323a8d7cd6e8027f7b19a544f528d2cae4028366ffbb28dc68d8a',
      checksumSource: 'CHANGELOG-1.11.md (official)',
      install: { on: 'masters', to: '/opt/k8s/bin (control plane binaries)' },
    },
    {
      id: 'kubernetes-node',
      kind: 'archive',
      version: 'v1.11.1',
      description: 'kubelet, kube-proxy',
      file: 'kubernetes-node-linux-amd64.tar.gz',
      source: { type: 'download', base: 'k8s', path: 'v1.11.1/kubernetes-node-linux-amd64.tar.gz' },
      sha256: '45fae35f7c3b23ff8557dcf638eb631dabbcc46a804534ca9d1043d846ec4408',
      checksumSource: 'CHANGELOG-1.11.md (official)',
      install: { on: 'nodes', to: '/opt/k8s/bin (kubelet, kube-proxy)' },
    },
    {
      id: 'kubernetes-client',
      kind: 'archive',
      version: 'v1.11.1',
      description: 'kubectl',
      file: 'kubernetes-client-linux-amd64.tar.gz',
      source: {
        type: 'download',
        base: 'k8s',
        path: 'v1.11.1/kubernetes-client-linux-amd64.tar.gz',
      },
      sha256: 'a6c7537434fedde75fb77c593b2d2978be1aed00896a354120c5b7164e54aa99',
      checksumSource: 'CHANGELOG-1.11.md (official)',
      install: { on: 'all', to: '/opt/k8s/bin/kubectl' },
    },
    {
      id: 'etcd',
      kind: 'archive',
      version: 'v3.3.5',
      description: 'etcd and etcdctl',
      file: 'etcd-v3.3.5-linux-amd64.tar.gz',
      source: {
        type: 'download',
        base: 'github',
        path: 'etcd-io/etcd/releases/download/v3.3.5/etcd-v3.3.5-linux-amd64.tar.gz',
      },
      checksumSource: FIRST_DOWNLOAD,
      install: { on: 'all', to: '/opt/k8s/bin (etcd members from etcd.members)' },
    },
    {
      id: 'flannel',
      kind: 'archive',
      version: 'v0.10.0',
      description: 'flanneld and mk-docker-opts.sh (etcd v2 API)',
      file: 'flannel-v0.10.0-linux-amd64.tar.gz',
      source: {
        type: 'download',
        base: 'github',
        path: 'flannel-io/flannel/releases/download/v0.10.0/flannel-v0.10.0-linux-amd64.tar.gz',
      },
      checksumSource: FIRST_DOWNLOAD,
      install: { on: 'all', to: '/opt/k8s/bin (flanneld runs on every VM, master included)' },
    },
    {
      id: 'docker',
      kind: 'archive',
      version: '18.03.0-ce',
      description: 'Docker static binaries (dockerd, docker, containerd, runc)',
      file: 'docker-18.03.0-ce.tgz',
      source: {
        type: 'download',
        base: 'docker',
        path: 'linux/static/stable/x86_64/docker-18.03.0-ce.tgz',
      },
      checksumSource: FIRST_DOWNLOAD,
      install: { on: 'all', to: '/usr/bin + docker.service (after flanneld)' },
    },
    registryImage({
      id: 'pause-image',
      version: '3.1',
      description: 'the pod sandbox image kubelet needs offline (--pod-infra-container-image)',
      file: 'pause-3.1.tar',
      reference: 'registry.k8s.io/pause:3.1',
      on: 'nodes',
      to: 'docker load',
    }),
    registryImage({
      id: 'traefik-image',
      version: 'v1.7',
      description: 'Traefik 1.7 ingress controller (DaemonSet on every node)',
      file: 'traefik-v1.7.tar',
      reference: 'registry-1.docker.io/library/traefik:v1.7',
      on: 'nodes',
      to: 'docker load',
    }),
    registryImage({
      id: 'php-apache-image',
      version: '7-apache',
      description: 'Apache + PHP base for the test app',
      file: 'php-7-apache.tar',
      reference: 'registry-1.docker.io/library/php:7-apache',
      on: 'nodes',
      to: 'docker load (klab verify builds the test app on it)',
    }),
  ],
};
