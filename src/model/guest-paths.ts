/** Where klab puts things on every VM: one table, read by steps, checks and lessons. */
export const GUEST = {
  bin: '/opt/k8s/bin',
  cache: '/var/cache/klab',
  stage: '/opt/k8s/stage',
  k8sDir: '/etc/kubernetes',
  pki: '/etc/kubernetes/pki',
  etcdPki: '/etc/etcd/pki',
  etcdData: '/var/lib/etcd/klab',
  units: '/etc/systemd/system',
} as const;

/** The cluster admin's kubeconfig on the master (kubectl there uses it). */
export const ADMIN_KUBECONFIG = `${GUEST.k8sDir}/admin.kubeconfig`;

/** Where kubelet keeps the client certificate TLS bootstrapping got it. */
export const KUBELET_CERT_DIR = '/var/lib/kubelet/pki';
