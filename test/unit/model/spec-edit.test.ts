/** klab.yaml edits for klab node add / remove: nothing moves but the VM in question. */
import { describe, expect, it } from 'vitest';
import { KlabError } from '../../../src/model/errors.js';
import { freeAddress, withNodeAdded, withNodeRemoved } from '../../../src/model/spec-edit.js';
import { parseSpecText } from '../../../src/model/spec-file.js';
import { defaultSpec, twoVmSpec } from '../../helpers/specs.js';

const plan = (text: string) => parseSpecText(text, 'klab', 'klab.yaml');
const addresses = (text: string) =>
  Object.fromEntries(plan(text).vms.map((vm) => [vm.name, vm.ip]));

describe('klab.yaml: node add', () => {
  it('writes the default lab out, appends the node on the next free address, pins the etcd members', () => {
    const spec = defaultSpec();
    const text = withNodeAdded(undefined, spec, { name: 'node4', memory: 1024 });
    const next = plan(text);
    expect(next.vms.map((vm) => [vm.name, vm.role, vm.ip])).toEqual([
      ['master', 'master', '192.168.56.10'],
      ['node1', 'node', '192.168.56.11'],
      ['node2', 'node', '192.168.56.12'],
      ['node3', 'node', '192.168.56.13'],
      ['node4', 'node', '192.168.56.14'],
    ]);
    expect(next.vms[4]?.memory).toBe(1024);
    expect(next.vms[4]?.cpusSet).toBe(false);
    // Unpinned, five VMs would still give the first three; pinned, a reorder cannot move them.
    expect(next.etcdMembers).toEqual(['master', 'node1', 'node2']);
    expect(text).toMatch(/members:\n\s+- master\n\s+- node1\n\s+- node2/);
  });

  it('keeps the comments and settings of the user file, and a 2-VM lab keeps its one etcd member', () => {
    const original = [
      '# my lab',
      'stack: debian',
      'nodes:',
      '  - name: master # the control plane',
      '    role: master',
      '  - name: node1',
      '',
    ].join('\n');
    const spec = plan(original);
    expect(spec.etcdMembers).toEqual(['master']);
    const text = withNodeAdded(original, spec, { name: 'node2', cpus: 1 });
    expect(text).toContain('# my lab');
    expect(text).toContain('# the control plane');
    expect(text).toContain('stack: debian');
    const next = plan(text);
    // Three VMs would make the default "the first three": the lab has one member and keeps it.
    expect(next.etcdMembers).toEqual(['master']);
    expect(next.vms.map((vm) => vm.name)).toEqual(['master', 'node1', 'node2']);
    expect(next.vms[2]).toMatchObject({ ip: '192.168.56.12', cpus: 1, cpusSet: true });
  });

  it('takes the first address no VM uses, past pinned ones', () => {
    const spec = twoVmSpec(); // master .10 (by place), node1 pinned at .50
    expect(freeAddress(spec)).toBe('10.77.0.11');
    const crowded = plan(
      [
        'nodes:',
        '  - { name: master, role: master }',
        '  - { name: node1, ip: 192.168.56.11 }',
        '  - { name: node3, ip: 192.168.56.12 }',
      ].join('\n'),
    );
    // node3 sits where a third VM would go by default: the new one must not collide with it.
    expect(freeAddress(crowded)).toBe('192.168.56.13');
    expect(addresses(withNodeAdded(undefined, crowded, { name: 'node4' })).node4).toBe(
      '192.168.56.13',
    );
  });

  it('says so when the subnet is full', () => {
    const tiny = plan(
      [
        'network: { subnet: 10.9.0.0/28, managementSubnet: 10.8.0.0/24 }',
        'nodes:',
        '  - { name: master, role: master }',
        '  - { name: node1 }',
        '  - { name: node2 }',
        '  - { name: node3 }',
      ].join('\n'),
    );
    expect(freeAddress(tiny)).toBe('10.9.0.14');
    const node1 = tiny.vms[1];
    if (!node1) throw new Error('no node1');
    const full = { ...tiny, vms: [...tiny.vms, { ...node1, name: 'node4', ip: '10.9.0.14' }] };
    expect(() => freeAddress(full)).toThrow(KlabError);
    expect(() => freeAddress(full)).toThrow(/no free address/);
  });
});

describe('klab.yaml: node remove', () => {
  it('removes the VM; the VMs after it keep their addresses, etcd its members', () => {
    const five = plan(
      `nodes:\n${['master', 'node1', 'node2', 'node3', 'node4']
        .map((name) => `  - { name: ${name}, role: ${name === 'master' ? 'master' : 'node'} }`)
        .join('\n')}\n`,
    );
    const text = withNodeRemoved(undefined, five, 'node3');
    const next = plan(text);
    expect(next.vms.map((vm) => vm.name)).toEqual(['master', 'node1', 'node2', 'node4']);
    // By place node4 would become .13: its /etc/hosts lines and flannel lease say .14.
    expect(addresses(text).node4).toBe('192.168.56.14');
    expect(next.etcdMembers).toEqual(['master', 'node1', 'node2']);
  });

  it('an add then a remove of the same node gives back the same lab', () => {
    const spec = defaultSpec();
    const added = withNodeAdded(undefined, spec, { name: 'node4' });
    const removed = plan(withNodeRemoved(added, plan(added), 'node4'));
    expect(removed.vms).toEqual(spec.vms);
    expect(removed.etcdMembers).toEqual(spec.etcdMembers);
  });

  it('refuses a klab.yaml that is no mapping, changing nothing', () => {
    expect(() => withNodeAdded('- a\n- b\n', defaultSpec(), { name: 'node4' })).toThrow(
      /must be a mapping/,
    );
  });
});
