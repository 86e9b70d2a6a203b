/**
 * THE ordered list of provisioning steps. Read top to bottom, this is what `klab create`
 * does to the VMs after they boot. Stack installation steps (binaries, certificates,
 * etcd, flannel, control plane, nodes) are appended here as they land.
 */
import type { LabSpec } from '../core/spec.js';
import { defaultRouteStep } from './default-route/index.js';
import { hostsFileStep } from './hosts-file/index.js';
import { machineIdStep } from './machine-id/index.js';
import type { Step } from './step.js';

/** Host preparation: what every VM needs before any Kubernetes part is installed. */
export const HOST_PREP_STEPS: readonly Step[] = [defaultRouteStep, hostsFileStep, machineIdStep];

export function provisioningSteps(_spec: LabSpec): readonly Step[] {
  return HOST_PREP_STEPS;
}
