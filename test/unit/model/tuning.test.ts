import { describe, expect, it } from 'vitest';
import { parseSpecText } from '../../../src/model/spec-file.js';
import { guestCpuShares, guestCpus } from '../../../src/model/tuning.js';
import { defaultSpec } from '../../helpers/specs.js';

describe('vCPUs per VM', () => {
  it('gives nodes 1 vCPU under TCG and the master 2, when klab.yaml is silent', () => {
    const spec = defaultSpec();
    expect(spec.vms.map((vm) => guestCpus(vm, 'tcg'))).toEqual([2, 1, 1, 1]);
    expect(spec.vms.map((vm) => guestCpus(vm, 'kvm'))).toEqual([2, 2, 2, 2]);
  });

  it('keeps what klab.yaml says, under TCG too', () => {
    const spec = parseSpecText(
      'nodes:\n  - { name: master, role: master, cpus: 1 }\n  - { name: node1, cpus: 3 }\n',
      'lab',
      'klab.yaml',
    );
    expect(spec.vms.map((vm) => [vm.cpus, vm.cpusSet])).toEqual([
      [1, true],
      [3, true],
    ]);
    expect(spec.vms.map((vm) => guestCpus(vm, 'tcg'))).toEqual([1, 3]);
  });
});

describe('CPU weight per VM', () => {
  it('weighs the master 3x a node under TCG, and leaves KVM labs at the default', () => {
    const spec = defaultSpec();
    expect(spec.vms.map((vm) => guestCpuShares(vm, 'tcg'))).toEqual([3072, 1024, 1024, 1024]);
    expect(spec.vms.map((vm) => guestCpuShares(vm, 'kvm'))).toEqual([1024, 1024, 1024, 1024]);
  });
});
