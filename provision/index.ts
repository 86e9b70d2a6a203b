/**
 * THE ordered list of provisioning steps. Read top to bottom, this is what `klab create`
 * does to the VMs after they boot; each step is checkpointed as after-<id>.
 * The tutorial's scripts, for orientation: x01 = binaries (+ docker), x02 = images,
 * x03 = certs, x04 = etcd, x05 = kubectl, x06 = flannel, x07 = control-plane + kubelet.
 */
import type { LabSpec } from '../src/model/spec.js';
import { binariesStep } from './binaries/index.js';
import { certsStep } from './certs/index.js';
import { controlPlaneStep } from './control-plane/index.js';
import { defaultRouteStep } from './default-route/index.js';
import { dockerStep } from './docker/index.js';
import { etcdStep } from './etcd/index.js';
import { flannelStep } from './flannel/index.js';
import { hostsFileStep } from './hosts-file/index.js';
import { imagesStep } from './images/index.js';
import { kernelStep } from './kernel/index.js';
import { kubeProxyStep } from './kube-proxy/index.js';
import { kubectlStep } from './kubectl/index.js';
import { kubeletStep } from './kubelet/index.js';
import type { Step } from './lib/step.js';
import { machineIdStep } from './machine-id/index.js';
import { tlsBootstrapStep } from './tls-bootstrap/index.js';

/** Host preparation: what every VM needs before any Kubernetes part is installed. */
export const HOST_PREP_STEPS: readonly Step[] = [defaultRouteStep, hostsFileStep, machineIdStep];

/** The cluster, bottom up: every part waits until the one below it is healthy. */
export const CLUSTER_STEPS: readonly Step[] = [
  kernelStep,
  binariesStep,
  certsStep,
  etcdStep,
  flannelStep,
  dockerStep,
  imagesStep,
  controlPlaneStep,
  kubectlStep,
  tlsBootstrapStep,
  kubeProxyStep,
  kubeletStep,
];

export function provisioningSteps(_spec: LabSpec): readonly Step[] {
  return [...HOST_PREP_STEPS, ...CLUSTER_STEPS];
}
