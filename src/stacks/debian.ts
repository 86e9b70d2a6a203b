/**
 * The mirror-only stack: everything from a Debian mirror and the Go module proxy, for
 * hosts that reach neither dl.k8s.io nor GitHub nor Docker Hub (and for this project's CI).
 */
import { built, type StackInput } from './manifest.js';

export const debian: StackInput = {
  name: 'debian',
  title: 'Mirror-only stack: Kubernetes 1.20.2 from Debian sources, etcd 3.4.23, Docker 20.10.24',
  versions: {
    kubernetes: 'v1.20.2',
    etcd: '3.4.23',
    flannel: 'v0.2x (Go module, etcd v3 API)',
    docker: '20.10.24',
  },
  differences: [
    'Kubernetes 1.20.2 instead of 1.11.1: same binaries and dockershim (Docker as runtime), but kube-apiserver refuses --insecure-port other than 0, and some 1.11 flags are gone (--experimental-encryption-provider-config is --encryption-provider-config).',
    'etcd 3.4 serves the v2 API only with --enable-v2; a current flannel speaks etcd v3, so its config is written with the v3 API.',
    'Docker 20.10 from Debian packages instead of the 18.03 static binaries; containerd and runc come as separate packages.',
    'Traefik v2.11 instead of 1.7 (built from its Go module): the ingress uses networking.k8s.io/v1 and an IngressClass, and Traefik takes v2 flags.',
    'Docker loads its AppArmor profile for every container, so the apparmor package comes with the Docker packages; kube-proxy gets conntrack.',
    'CoreDNS v1.10.1 (built from its Go module) instead of 1.1.3, the version kubeadm 1.11 deployed: the Corefile uses forward instead of proxy, and ready and loop, which 1.1.3 lacks.',
    'The box is Debian 12 with cgroup v1 instead of Ubuntu 18.04; no systemd-resolved stub to work around.',
  ],
  artifacts: [
    built({
      id: 'box',
      kind: 'box',
      version: 'debian-12',
      description: 'klab/debian-12 libvirt box (debootstrap, cgroup v1)',
      file: 'debian-12.box',
      recipe: 'klab box build (debootstrap from the Debian mirror)',
      on: 'all',
      to: 'the VMs boot from it',
    }),
    built({
      id: 'kubernetes',
      kind: 'archive',
      version: 'v1.20.2',
      description:
        'kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy built from Debian source package kubernetes',
      file: 'kubernetes-1.20.2-debian.tar.gz',
      recipe:
        "apt-get source kubernetes; make with Debian's golang-1.19 (about 6 minutes on 2 cores)",
      on: 'all',
      to: '/opt/k8s/bin',
    }),
    built({
      id: 'etcd',
      kind: 'deb',
      version: '3.4.23',
      description: 'Debian etcd-server and etcd-client packages',
      file: 'etcd-3.4.23-debs.tar',
      recipe: 'apt-get download etcd-server etcd-client',
      on: 'all',
      to: 'dpkg -i (etcd members from etcd.members)',
    }),
    built({
      id: 'docker',
      kind: 'deb',
      version: '20.10.24',
      description:
        'Debian docker.io, containerd, runc, tini packages, plus apparmor (Docker loads its profile with it) and conntrack (kube-proxy)',
      file: 'docker-20.10.24-debs.tar',
      recipe:
        'apt-get download docker.io containerd runc tini apparmor conntrack (and their dependencies)',
      on: 'all',
      to: 'dpkg -i + docker.service (after flanneld)',
    }),
    built({
      id: 'flannel',
      kind: 'archive',
      version: 'v0.28.10',
      description:
        'flanneld (vxlan, etcd v3 API) and mk-docker-opts.sh, built from the flannel Go module',
      file: 'flannel-v0.28.10-linux-amd64.tar.gz',
      recipe: 'go build of the flannel Go module through the Go module proxy',
      on: 'all',
      to: '/opt/k8s/bin/flanneld',
    }),
    built({
      id: 'traefik',
      kind: 'archive',
      version: 'v2.11.10',
      description: 'Traefik v2 ingress controller, built from its Go module (no web dashboard)',
      file: 'traefik-v2.11.10-linux-amd64.tar.gz',
      recipe: 'go build of the Traefik Go module through the Go module proxy',
      on: 'nodes',
      to: 'the ingress DaemonSet (a local image around this binary)',
    }),
    built({
      id: 'coredns',
      kind: 'archive',
      version: 'v1.10.1',
      description:
        'CoreDNS cluster DNS, built from its Go module with the plugins of the lab Corefile only',
      file: 'coredns-v1.10.1-linux-amd64.tar.gz',
      recipe: 'go build of the CoreDNS Go module through the Go module proxy',
      on: 'nodes',
      to: 'the cluster DNS Deployment (a local image around this binary)',
    }),
    built({
      id: 'pause-image',
      kind: 'image',
      version: 'klab-1',
      description: 'a tiny static pause program, saved as an image tarball',
      file: 'pause-klab.tar',
      recipe: 'compiled locally, packed as a docker-archive without a registry',
      on: 'all',
      to: 'docker load',
    }),
    built({
      id: 'php-apache-image',
      kind: 'image',
      version: 'debian-12-slim',
      description:
        'Apache + PHP (Debian packages) test-app image: only the files Apache and mod_php load, gzip',
      file: 'php-apache-debian-slim.tar.gz',
      recipe:
        'apache2 + libapache2-mod-php installed in a scratch root, the files they load copied out (ldd), packed as a docker-archive',
      on: 'nodes',
      to: 'docker load',
    }),
  ],
};
