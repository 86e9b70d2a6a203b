/**
 * A flanneld whose -iface changed takes a new lease and sees its VM's old lease as another
 * VM's: it replaces docker0's route with a vxlan one, and when the old lease comes back the
 * pods on that VM stay out of reach. The flannel step finds that and puts the route back;
 * the flannel-wrong-iface lesson also wants the stale lease gone.
 */
import { describe, expect, it } from 'vitest';
import {
  bridgeRoute,
  flannelStep,
  ownPodRouteProblem,
  renderFlannelConfig,
  restoreOwnPodRoute,
} from '../../../provision/flannel/index.js';
import { foreignLeases } from '../../../src/lessons/faults.js';
import type { VmPlan } from '../../../src/model/spec.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { defaultSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const ENV = 'FLANNEL_NETWORK=172.30.0.0/16\nFLANNEL_SUBNET=172.30.8.1/24\nFLANNEL_MTU=1450\n';
const DOCKER0 = '5: docker0    inet 172.30.8.1/24 brd 172.30.8.255 scope global docker0\n';
const HEALTHY_ROUTES = [
  'default via 192.168.121.1 dev eth0 proto dhcp metric 100',
  '172.30.8.0/24 dev docker0 proto kernel scope link src 172.30.8.1',
  '172.30.21.0/24 via 172.30.21.0 dev flannel.1 onlink',
].join('\n');
const TAKEN_ROUTES = [
  'default via 192.168.121.1 dev eth0 proto dhcp metric 100',
  '172.30.8.0/24 via 172.30.8.0 dev flannel.1 onlink',
].join('\n');

const seen = (env: string, docker0: string, routes: string) =>
  `${env}---\n${docker0}---\n${routes}\n`;

describe("docker0's route", () => {
  it('is derived from subnet.env, for any prefix flannel leases', () => {
    expect(bridgeRoute(ENV)).toEqual({ net: '172.30.8.0/24', src: '172.30.8.1' });
    expect(bridgeRoute('FLANNEL_SUBNET=10.244.3.1/25\n')).toEqual({
      net: '10.244.3.0/25',
      src: '10.244.3.1',
    });
    expect(bridgeRoute('FLANNEL_NETWORK=172.30.0.0/16\n')).toBeUndefined();
    expect(bridgeRoute('FLANNEL_SUBNET=300.1.1.1/24\n')).toBeUndefined();
  });

  it('is a problem only when docker0 is on the lease and its subnet goes elsewhere', () => {
    expect(ownPodRouteProblem(seen(ENV, DOCKER0, HEALTHY_ROUTES))).toBeUndefined();
    // linkdown (no container yet) is still docker0's route
    expect(
      ownPodRouteProblem(
        seen(
          ENV,
          DOCKER0,
          '172.30.8.0/24 dev docker0 proto kernel scope link src 172.30.8.1 linkdown',
        ),
      ),
    ).toBeUndefined();
    expect(ownPodRouteProblem(seen(ENV, DOCKER0, TAKEN_ROUTES))).toBe(
      `this VM's own pod subnet 172.30.8.0/24 is routed "172.30.8.0/24 via 172.30.8.0 dev flannel.1 onlink", not to docker0: its pods are out of reach (ip route replace 172.30.8.0/24 dev docker0 src 172.30.8.1)`,
    );
    expect(ownPodRouteProblem(seen(ENV, DOCKER0, 'default via 192.168.121.1 dev eth0'))).toMatch(
      /routed nowhere, not to docker0/,
    );
    // no docker0 (the master, or before the docker step), or docker0 on another lease: the
    // docker step's business
    expect(ownPodRouteProblem(seen(ENV, '', TAKEN_ROUTES))).toBeUndefined();
    expect(
      ownPodRouteProblem(seen('FLANNEL_SUBNET=172.30.35.1/24\n', DOCKER0, TAKEN_ROUTES)),
    ).toBeUndefined();
    // another VM's subnet that merely starts alike is not ours
    expect(
      ownPodRouteProblem(
        seen(
          ENV,
          DOCKER0,
          `${HEALTHY_ROUTES}\n172.30.80.0/24 via 172.30.80.0 dev flannel.1 onlink`,
        ),
      ),
    ).toBeUndefined();
  });
});

/** A node whose route table can be taken and put back. */
function node(routes: string) {
  const state = { routes };
  const host = new FakeHost('node1', (argv) => {
    if (argv[0] === 'sh') return { stdout: seen(ENV, DOCKER0, state.routes) };
    if (argv[0] === 'ip' && argv[1] === 'route' && argv[2] === 'replace') {
      state.routes = HEALTHY_ROUTES;
      return {};
    }
    if (argv[0] === 'systemctl' && argv[1] === 'is-active') return { stdout: 'active\n' };
    if (argv[0] === 'cat') return { stdout: ENV };
    return {};
  });
  return { host, state };
}

describe('the flannel step', () => {
  const spec = defaultSpec();
  const node1 = spec.vms.find((vm) => vm.name === 'node1') as VmPlan;

  it('puts docker0 back as the route of its own pods, and only then', async () => {
    const { host, state } = node(TAKEN_ROUTES);
    const ctx = testStepContext(spec, { node1: host });
    expect(await restoreOwnPodRoute(ctx, node1)).toBe(true);
    const replace = host.calls.find((call) => call.argv.includes('replace'));
    expect(replace?.argv).toEqual([
      'ip',
      'route',
      'replace',
      '172.30.8.0/24',
      'dev',
      'docker0',
      'proto',
      'kernel',
      'scope',
      'link',
      'src',
      '172.30.8.1',
    ]);
    expect(replace?.sudo).toBe(true);
    expect(state.routes).toBe(HEALTHY_ROUTES);
    const calls = host.calls.length;
    expect(await restoreOwnPodRoute(ctx, node1)).toBe(false);
    expect(host.calls.slice(calls).some((call) => call.argv.includes('replace'))).toBe(false);
  });

  it('names the taken route among its problems', async () => {
    const { host } = node(TAKEN_ROUTES);
    const etcd = new FakeHost('master', (argv) =>
      argv.at(-1) === '--print-value-only' ? { stdout: renderFlannelConfig(spec) } : undefined,
    );
    const ctx = testStepContext(spec, { node1: host, master: etcd });
    const problems = await flannelStep.problems?.(ctx, node1);
    expect(problems?.join('\n')).toMatch(/own pod subnet 172\.30\.8\.0\/24 is routed/);
  });
});

describe('the flannel-wrong-iface lesson', () => {
  it("finds leases on an address outside the lab's private network", () => {
    const spec = defaultSpec();
    const [first, second] = spec.vms;
    const leases = new Map([
      ['/coreos.com/network/subnets/172.30.8.0-24', first?.ip ?? ''],
      ['/coreos.com/network/subnets/172.30.21.0-24', second?.ip ?? ''],
      ['/coreos.com/network/subnets/172.30.35.0-24', '192.168.121.57'],
    ]);
    expect(foreignLeases(leases, spec)).toEqual([
      { key: '/coreos.com/network/subnets/172.30.35.0-24', ip: '192.168.121.57' },
    ]);
  });
});
