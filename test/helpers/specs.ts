import type { LabSpec } from '../../src/model/spec.js';
import { validateSpec } from '../../src/model/spec-file.js';

/** The default lab (the tutorial's), as klab plans it with no klab.yaml. */
export function defaultSpec(name = 'klab'): LabSpec {
  return validateSpec({}, name, 'the default lab');
}

/** A small custom lab: master + node1, 1 GB each, its own subnets. */
export function twoVmSpec(): LabSpec {
  return validateSpec(
    {
      name: 'duo',
      box: 'klab/debian-12',
      stack: 'debian',
      hypervisor: 'kvm',
      network: { subnet: '10.77.0.0/24', managementSubnet: '10.78.0.0/24' },
      nodes: [
        { name: 'master', role: 'master', memory: 1024, cpus: 1 },
        { name: 'node1', memory: 1024, cpus: 1, disk: 20, ip: '10.77.0.50' },
      ],
    },
    'duo',
    'test',
  );
}
