/** klab node add / remove: the refusals, and what leaving the cluster does, in order. */
import { describe, expect, it } from 'vitest';
import { leasePublicIp } from '../../../provision/flannel/index.js';
import { provisioningSteps } from '../../../provision/index.js';
import { addRefusal, leaveCluster, removalRefusal } from '../../../src/app/nodes.js';
import { stepVms } from '../../../src/app/pipeline.js';
import { parseSpecText } from '../../../src/model/spec-file.js';
import { installProfile } from '../../../src/stacks/install.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { defaultSpec, twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

describe('node remove refuses what would break the lab', () => {
  it('refuses the master, the only etcd member, and any member of three', () => {
    const spec = defaultSpec(); // etcd on master, node1, node2
    expect(removalRefusal(spec, 'master')).toMatch(/is the lab's master/);
    expect(removalRefusal(spec, 'node1')).toMatch(/one of the 3 etcd members.*2 left/);
    expect(removalRefusal(spec, 'node2')).toMatch(/etcd members/);
    expect(removalRefusal(spec, 'node3')).toBeUndefined();
    const alone = parseSpecText(
      'nodes:\n  - { name: master, role: master }\n  - { name: node1 }\netcd: { members: [node1] }\n',
      'x',
      'klab.yaml',
    );
    expect(removalRefusal(alone, 'node1')).toMatch(
      /only etcd member: removing it loses every object/,
    );
    // Not in the lab: the caller says "no such VM", not a refusal.
    expect(removalRefusal(spec, 'node9')).toBeUndefined();
  });

  it('add refuses the master name and takes a name in klab.yaml as a join to finish', () => {
    const spec = twoVmSpec();
    expect(addRefusal(spec, 'master')).toMatch(/already the lab's master/);
    expect(addRefusal(spec, 'node1')).toBeUndefined();
    expect(addRefusal(spec, 'node2')).toBeUndefined();
  });
});

describe('a joining node runs every step on itself, and the lab-wide ones everywhere', () => {
  it('the new VM gets the host and node steps; /etc/hosts and the bootstrap tokens run on their own VMs', () => {
    const spec = parseSpecText(
      'nodes:\n  - { name: master, role: master }\n  - { name: node1 }\n  - { name: node2 }\netcd: { members: [master] }\n',
      'x',
      'klab.yaml',
    );
    const only = new Set(['node2']);
    const plan = Object.fromEntries(
      provisioningSteps(spec).map((step) => [
        step.id,
        stepVms(step, spec, only).map((vm) => vm.name),
      ]),
    );
    expect(plan).toEqual({
      'default-route': ['node2'],
      'hosts-file': ['master', 'node1', 'node2'],
      'machine-id': ['node2'],
      kernel: ['node2'],
      binaries: ['node2'],
      certs: ['node2'],
      etcd: [],
      flannel: ['node2'],
      docker: ['node2'],
      images: ['node2'],
      'control-plane': [],
      kubectl: [],
      'tls-bootstrap': ['master'],
      'kube-proxy': ['node2'],
      kubelet: ['node2'],
    });
    // Without a filter, nothing changes for klab create.
    const first = provisioningSteps(spec)[0];
    if (!first) throw new Error('no steps');
    expect(stepVms(first, spec).map((vm) => vm.name)).toEqual(['master', 'node1', 'node2']);
  });
});

describe('leaving the cluster', () => {
  const lease = (ip: string) => JSON.stringify({ PublicIP: ip, BackendType: 'vxlan' });

  function master(nodeKnown: boolean, api: 'v2' | 'v3') {
    const leases: Record<string, string> = {
      '/coreos.com/network/subnets/172.30.5.0-24': lease('10.77.0.10'),
      '/coreos.com/network/subnets/172.30.9.0-24': lease('10.77.0.50'),
    };
    return new FakeHost('master', (argv) => {
      const line = argv.join(' ');
      if (line.includes('get node node1')) {
        return nodeKnown ? { stdout: 'node/node1' } : { exitCode: 1, stderr: 'NotFound' };
      }
      if (api === 'v3' && line.includes('get --prefix /coreos.com/network/subnets')) {
        return {
          stdout: Object.entries(leases).flat().join('\n'),
        };
      }
      if (api === 'v2' && line.includes(' ls /coreos.com/network/subnets')) {
        return { stdout: Object.keys(leases).join('\n') };
      }
      const key = argv[argv.length - 1] ?? '';
      if (api === 'v2' && argv.includes('get') && leases[key]) return { stdout: leases[key] };
      return { stdout: '' };
    });
  }

  const steps = (host: FakeHost) =>
    host
      .commands()
      .map((command) =>
        /kubectl.* (drain|delete node|delete secret|get node)/.test(command)
          ? command.replace(/^.*kubectl\S* (?:--kubeconfig=\S+ )?/, 'kubectl ')
          : /etcdctl.* (del|rm) /.test(command)
            ? command.replace(/^.*etcdctl.* (del|rm) /, 'etcdctl $1 ')
            : undefined,
      )
      .filter((command) => command !== undefined);

  it('drains, deletes the Node, its flannel lease (v3) and its bootstrap token, in that order', async () => {
    const spec = twoVmSpec();
    const host = master(true, 'v3');
    const ctx = testStepContext(spec, { master: host });
    const node1 = spec.vms[1];
    if (!node1) throw new Error('no node1');
    await leaveCluster(ctx, node1, { id: 'abc123', secret: 'x'.repeat(16), node: 'node1' });
    expect(steps(host)).toEqual([
      'kubectl get node node1 -o name',
      'kubectl drain node1 --ignore-daemonsets --delete-local-data --force --grace-period=20 --timeout=240s',
      'kubectl delete node node1 --ignore-not-found',
      'etcdctl del /coreos.com/network/subnets/172.30.9.0-24',
      'kubectl -n kube-system delete secret bootstrap-token-abc123 --ignore-not-found',
    ]);
  });

  it('a node already gone from the API is not drained; flannel 0.10 leases go through the v2 API', async () => {
    const spec = twoVmSpec();
    const host = master(false, 'v2');
    const ctx = testStepContext(spec, { master: host }, { profile: installProfile('v1.11.1') });
    const node1 = spec.vms[1];
    if (!node1) throw new Error('no node1');
    await leaveCluster(ctx, node1, undefined);
    expect(steps(host)).toEqual([
      'kubectl get node node1 -o name',
      'kubectl delete node node1 --ignore-not-found',
      'etcdctl rm /coreos.com/network/subnets/172.30.9.0-24',
    ]);
  });

  it('reads the PublicIP of a lease, and nothing from junk', () => {
    expect(leasePublicIp(lease('10.0.0.1'))).toBe('10.0.0.1');
    expect(leasePublicIp('Error: 100: Key not found')).toBe('');
  });
});
