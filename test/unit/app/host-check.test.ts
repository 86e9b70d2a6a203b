import { describe, expect, it } from 'vitest';
import {
  checkpointMode,
  findSubnetCollisions,
  ipv4Addresses,
  resourceNeeds,
} from '../../../src/app/host-check.js';
import { bootOrder } from '../../../src/app/lifecycle.js';
import { assertNoFailures, type Finding, labNameFinding } from '../../../src/app/preflight.js';
import type { KlabError } from '../../../src/model/errors.js';
import { defaultSpec } from '../../helpers/specs.js';

const spec = defaultSpec();

describe('subnet collisions with the host', () => {
  const host = ipv4Addresses({
    lo: [{ address: '127.0.0.1', family: 'IPv4', cidr: '127.0.0.1/8' }],
    eth0: [
      { address: '192.168.56.77', family: 'IPv4', cidr: '192.168.56.77/24' },
      { address: 'fe80::1', family: 'IPv6', cidr: 'fe80::1/64' },
    ],
    wlan0: [{ address: '10.254.3.4', family: 4, cidr: '10.254.3.4/16' }],
    virbr7: [{ address: '192.168.121.1', family: 'IPv4', cidr: '192.168.121.1/24' }],
  });

  it('reads IPv4 addresses with their networks and ignores IPv6', () => {
    expect(host.map((a) => [a.iface, a.cidr])).toEqual([
      ['lo', '127.0.0.0/8'],
      ['eth0', '192.168.56.0/24'],
      ['wlan0', '10.254.0.0/16'],
      ['virbr7', '192.168.121.0/24'],
    ]);
  });

  it('finds every lab network that overlaps a host network', () => {
    expect(findSubnetCollisions(spec, host, []).map((c) => `${c.setting} ${c.iface}`)).toEqual([
      'network.subnet eth0',
      'network.managementSubnet virbr7',
      'network.serviceCidr wlan0',
    ]);
  });

  it("does not count the lab's own libvirt bridges from an earlier run", () => {
    expect(findSubnetCollisions(spec, host, ['eth0', 'virbr7', 'wlan0'])).toEqual([]);
  });
});

describe('resources and boot order', () => {
  it('adds up the VMs memory', () => {
    expect(resourceNeeds(spec).memoryMb).toBe(4 * 2048);
    // 4 VMs x 4 GB + the box, plus 16 checkpoints of a fifth of 8 GB of memory (free guest
    // memory is zeroed before each one): a checkpoint after every step on a 60 GB host.
    expect(resourceNeeds(spec)).toEqual({ memoryMb: 8192, diskGb: 18 + 26, checkpointGb: 26 });
    const without = { ...spec, snapshots: { automatic: false } };
    expect(resourceNeeds(without).diskGb).toBe(18);
    // Checkpoints follow the free space: all of them, only the last one, or none at all.
    expect(checkpointMode(spec, 60)).toBe('every-step');
    expect(checkpointMode(spec, 40)).toBe('last-step');
    expect(checkpointMode(without, 100)).toBe('none');
  });

  it('boots the first VM alone (it uploads the box), then the rest in parallel', () => {
    expect(bootOrder(['master', 'node1', 'node2', 'node3'])).toEqual([
      { vms: ['master'], parallel: false },
      { vms: ['node1', 'node2', 'node3'], parallel: true },
    ]);
    expect(bootOrder(['master', 'node1'])).toEqual([
      { vms: ['master'], parallel: false },
      { vms: ['node1'], parallel: false },
    ]);
    expect(bootOrder(['master'])).toEqual([{ vms: ['master'], parallel: false }]);
    expect(bootOrder([])).toEqual([]);
  });
});

describe('blocking findings', () => {
  it('headline and error code name the same finding, however many there are', () => {
    const findings: Finding[] = [
      { check: 'vagrant-libvirt plugin', status: 'fail', detail: 'not installed', fix: 'apt' },
      { check: 'memory', status: 'ok', detail: 'enough' },
      { check: 'lab subnets', status: 'fail', detail: '192.168.56.0/24 is on eth3' },
    ];
    let error: KlabError | undefined;
    try {
      assertNoFailures(findings);
    } catch (e) {
      error = e as KlabError;
    }
    expect(error?.code).toBe('KLAB_SUBNET_COLLISION');
    expect(error?.message).toBe(
      'the host is not ready: lab subnets: 192.168.56.0/24 is on eth3 (and 1 more finding)',
    );
    expect(error?.details).toHaveLength(2);
    expect(() =>
      assertNoFailures([{ check: 'tool vagrant', status: 'fail', detail: 'not found on PATH' }]),
    ).toThrow(expect.objectContaining({ code: 'KLAB_TOOL_MISSING' }));
    expect(() =>
      assertNoFailures([{ check: 'disk', status: 'warn', detail: 'tight' }]),
    ).not.toThrow();
  });
});

describe('a lab name libvirt already has', () => {
  const domains = ['klab-lab_master', 'klab-lab_node1', 'klab-lab2_master', 'other_vm'];

  it('refuses VMs of the same name that this directory did not make, with the way out', () => {
    const finding = labNameFinding({ name: 'lab' }, domains, false);
    expect(finding.status).toBe('fail');
    // Only this lab's prefix counts: "lab2" is another lab.
    expect(finding.detail).toContain('(klab-lab_master, klab-lab_node1)');
    expect(finding.fix).toContain('klab destroy --yes');
    expect(() => assertNoFailures([finding])).toThrow(
      expect.objectContaining({ code: 'KLAB_LAB_NAME_TAKEN' }),
    );
  });

  it('passes for VMs this directory made (a resumed create) and for a name nobody has', () => {
    expect(labNameFinding({ name: 'lab' }, domains, true).status).toBe('ok');
    expect(labNameFinding({ name: 'lab3' }, domains, false).status).toBe('ok');
    expect(labNameFinding({ name: 'lab2' }, domains, false).detail).toContain('klab-lab2_master');
  });
});
