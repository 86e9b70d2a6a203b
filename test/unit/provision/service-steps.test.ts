/**
 * Each service step against a simulated lab: its problems on a bare VM, what apply does,
 * that it is done afterwards, and one broken probe each (named, not "something failed").
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { controlPlaneStep } from '../../../provision/control-plane/index.js';
import { dockerStep } from '../../../provision/docker/index.js';
import { etcdStep } from '../../../provision/etcd/index.js';
import { flannelStep } from '../../../provision/flannel/index.js';
import { kubeProxyStep } from '../../../provision/kube-proxy/index.js';
import { kubeletStep } from '../../../provision/kubelet/index.js';
import { etcdValue } from '../../../provision/lib/probes.js';
import type { Step, StepContext } from '../../../provision/lib/step.js';
import type { Clock } from '../../../src/model/events.js';
import { sha256 } from '../../../src/model/hash.js';
import type { VmPlan } from '../../../src/model/spec.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { defaultSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const spec = defaultSpec();
const vm = (name: string): VmPlan => {
  const found = spec.vms.find((entry) => entry.name === name);
  if (!found) throw new Error(name);
  return found;
};

/** A lab in memory: files and running units per VM, one etcd keyspace, health to break. */
class World {
  readonly hosts = new Map<string, FakeHost>();
  readonly active = new Map<string, Set<string>>();
  readonly etcd = new Map<string, string>();
  readonly broken = new Set<string>();

  host(name: string): FakeHost {
    let host = this.hosts.get(name);
    if (!host) {
      const units = new Set<string>();
      this.active.set(name, units);
      const made: FakeHost = new FakeHost(name, (argv) => this.answer(made, units, argv));
      host = made;
      this.hosts.set(name, host);
    }
    return host;
  }

  private running(units: Set<string>, unit: string): boolean {
    return units.has(unit) && !this.broken.has(unit);
  }

  private answer(host: FakeHost, units: Set<string>, argv: readonly string[]) {
    const [cmd = '', ...args] = argv;
    const line = argv.join(' ');
    const ok = (yes: boolean, stdout = '') => ({
      exitCode: yes ? 0 : 1,
      stdout: yes ? stdout : '',
    });
    if (cmd === 'sha256sum') {
      const files = args.slice(1).filter((file) => host.files.has(file));
      const out = files.map((file) => `${sha256(host.files.get(file) ?? '')}  ${file}`);
      return { stdout: `${out.join('\n')}\n`, exitCode: files.length === args.length - 1 ? 0 : 1 };
    }
    if (cmd === 'systemctl') {
      const [verb = '', ...names] = args;
      if (verb === 'is-active') {
        const states = names.map((unit) => (units.has(unit) ? 'active' : 'inactive'));
        return {
          stdout: `${states.join('\n')}\n`,
          exitCode: states.every((s) => s === 'active') ? 0 : 3,
        };
      }
      if (verb === 'start' || verb === 'restart') for (const unit of names) units.add(unit);
      return { exitCode: 0 };
    }
    if (cmd.endsWith('etcdctl')) {
      const running = this.running(units, 'etcd');
      if (args.includes('endpoint')) return ok(running);
      const key = args.find((arg) => arg.startsWith('/coreos.com')) ?? '';
      if (args.includes('put') || args.includes('set')) {
        this.etcd.set(key, args[args.length - 1] ?? '');
        return ok(true);
      }
      return ok(this.etcd.has(key), this.etcd.get(key));
    }
    if (line.includes('/run/flannel/subnet.env')) {
      return ok(this.running(units, 'flanneld'), 'FLANNEL_SUBNET=172.30.5.1/24\n');
    }
    if (line === 'ip link show flannel.1') return ok(this.running(units, 'flanneld'));
    if (line.startsWith('ip -4 -o addr show docker0')) {
      return ok(
        this.running(units, 'docker'),
        '4: docker0    inet 172.30.5.1/24 brd 172.30.5.255\n',
      );
    }
    if (line === 'iptables -S FORWARD') {
      return ok(true, this.running(units, 'docker') ? '-P FORWARD ACCEPT\n' : '-P FORWARD DROP\n');
    }
    if (cmd.endsWith('kubectl')) {
      const apiserver = this.running(this.active.get('master') ?? new Set(), 'kube-apiserver');
      if (line.endsWith('get --raw /healthz')) return ok(apiserver, apiserver ? 'ok' : '');
      if (line.includes('componentstatuses')) {
        const item = (name: string) => ({
          metadata: { name },
          conditions: [{ type: 'Healthy', status: this.broken.has(name) ? 'False' : 'True' }],
        });
        return ok(apiserver, JSON.stringify({ items: [item('scheduler'), item('etcd-0')] }));
      }
      const node = args[args.indexOf('node') + 1] ?? '';
      const ready = this.running(this.active.get(node) ?? new Set(), 'kubelet');
      const status = ready ? 'True' : 'False';
      return ok(true, JSON.stringify({ status: { conditions: [{ type: 'Ready', status }] } }));
    }
    if (cmd === 'curl') return ok(this.running(units, 'kube-proxy'));
    if (line.startsWith('iptables -t nat -S KUBE-SERVICES'))
      return ok(this.running(units, 'kube-proxy'));
    if (cmd === 'test' && args[0] === '-s') return ok(this.running(units, 'kubelet'));
    if (cmd === 'test') return ok(false);
    return { exitCode: 0 };
  }
}

async function context(world: World): Promise<StepContext> {
  const clock: Clock = { now: () => 0, sleep: async () => {} };
  return testStepContext(
    { ...spec, timeouts: { ...spec.timeouts, health: 0 } },
    (vm) => world.host(vm),
    {
      clock,
      pkiDir: await mkdtemp(path.join(os.tmpdir(), 'klab-pki-')),
    },
  );
}

async function problems(step: Step, ctx: StepContext, on: VmPlan): Promise<string[]> {
  if (!step.problems) throw new Error(`${step.id} has no problems()`);
  return step.problems(ctx, on);
}

/** Everything below the step, running: what the step depends on. */
function below(world: World, units: Record<string, string[]>, etcdConfig = false): void {
  for (const [name, list] of Object.entries(units)) {
    world.host(name);
    for (const unit of list) world.active.get(name)?.add(unit);
  }
  if (etcdConfig) {
    world.etcd.set(
      '/coreos.com/network/config',
      JSON.stringify({ Network: spec.network.podCidr, SubnetLen: 24, Backend: { Type: 'vxlan' } }),
    );
  }
}

const cases: {
  step: Step;
  vm: string;
  units: string[];
  files: string[];
  deps: Record<string, string[]>;
  etcdConfig?: boolean;
  /** Problems of a bare VM besides its files and units. */
  extra?: string[];
  /** A unit to break after apply, and the problem that names it. */
  breaks: [string, RegExp];
  restartsAlways?: boolean;
}[] = [
  {
    step: etcdStep,
    vm: 'master',
    units: ['etcd'],
    files: ['/etc/systemd/system/etcd.service'],
    deps: {},
    breaks: ['etcd', /^etcd is not healthy/],
  },
  {
    step: flannelStep,
    vm: 'node1',
    units: ['flanneld'],
    files: ['/etc/systemd/system/flanneld.service'],
    deps: { master: ['etcd'] },
    etcdConfig: false,
    extra: ["the value of /coreos.com/network/config in etcd is not the lab's"],
    breaks: ['flanneld', /^no subnet lease yet/],
  },
  {
    step: dockerStep,
    vm: 'node1',
    units: ['docker'],
    files: ['/etc/systemd/system/docker.service.d/klab.conf', '/etc/docker/daemon.json'],
    deps: { node1: ['flanneld'] },
    breaks: ['docker', /^docker0 is not on flannel's subnet/],
    restartsAlways: true,
  },
  {
    step: controlPlaneStep,
    vm: 'master',
    units: ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'],
    files: [
      '/etc/systemd/system/kube-apiserver.service',
      '/etc/systemd/system/kube-controller-manager.service',
      '/etc/systemd/system/kube-scheduler.service',
    ],
    deps: { master: ['etcd'] },
    breaks: ['scheduler', /^scheduler: unhealthy/],
  },
  {
    step: kubeProxyStep,
    vm: 'node2',
    units: ['kube-proxy'],
    files: ['/etc/kubernetes/kube-proxy-config.yaml', '/etc/systemd/system/kube-proxy.service'],
    deps: {},
    breaks: ['kube-proxy', /^kube-proxy healthz/],
  },
  {
    step: kubeletStep,
    vm: 'node3',
    units: ['kubelet'],
    files: ['/etc/kubernetes/kubelet-config.yaml', '/etc/systemd/system/kubelet.service'],
    deps: { master: ['kube-apiserver'] },
    breaks: ['kubelet', /^no client certificate from TLS bootstrap yet/],
  },
];

describe('service steps on a simulated lab', () => {
  for (const c of cases) {
    it(`${c.step.id}: names what is missing, applies it, is done, and names a broken probe`, async () => {
      const world = new World();
      below(world, c.deps, c.etcdConfig ?? true);
      const ctx = await context(world);
      const target = vm(c.vm);

      const before = await problems(c.step, ctx, target);
      expect(before).toEqual([
        ...c.files.map((file) => `${file} differs`),
        ...(c.extra ?? []),
        ...c.units.map((unit) => `${unit} is not running`),
      ]);
      expect(await c.step.check(ctx, target)).toBe(false);

      await c.step.apply(ctx, target);
      const host = world.host(c.vm);
      for (const file of c.files) expect(host.files.has(file)).toBe(true);
      expect(host.commands()).toContain(`sudo systemctl enable ${c.units.join(' ')}`);
      expect(await problems(c.step, ctx, target)).toEqual([]);
      await c.step.verify(ctx, target);

      // Applied again with nothing changed: no file written, a start (not a restart).
      const writes = host.writes.length;
      const commandsSoFar = host.commands().length;
      await c.step.apply(ctx, target);
      expect(host.writes.length).toBe(writes);
      const verb = c.restartsAlways ? 'restart' : 'start';
      const started = host
        .commands()
        .slice(commandsSoFar)
        .filter((command) => /systemctl (re)?start /.test(command));
      expect(started).toHaveLength(1);
      expect(started[0]).toBe(`sudo systemctl ${verb} ${c.units.join(' ')}`);

      world.broken.add(c.breaks[0]);
      const now = await problems(c.step, ctx, target);
      expect(now).toHaveLength(1);
      expect(now[0]).toMatch(c.breaks[1]);
      const error = await c.step.verify(ctx, target).catch((e: Error) => e);
      expect((error as Error).message).toContain(`${c.step.id} on ${c.vm}:`);
    });
  }

  it('flannel: writes the network config into etcd before flanneld starts, once', async () => {
    const world = new World();
    below(world, { master: ['etcd'] });
    const ctx = await context(world);
    expect(await problems(flannelStep, ctx, vm('node1'))).toContain(
      "the value of /coreos.com/network/config in etcd is not the lab's",
    );
    await flannelStep.apply(ctx, vm('node1'));
    expect(JSON.parse(world.etcd.get('/coreos.com/network/config') ?? '{}')).toEqual({
      Network: spec.network.podCidr,
      SubnetLen: 24,
      Backend: { Type: 'vxlan' },
    });
    const sets = world
      .host('master')
      .commands()
      .filter((c) => c.includes(' set ') || c.includes(' put '));
    await flannelStep.apply(ctx, vm('node2'));
    expect(
      world
        .host('master')
        .commands()
        .filter((c) => c.includes(' set ') || c.includes(' put ')),
    ).toEqual(sets);
  });
});

describe('a key in etcd asked for by every VM at once', () => {
  it('is read once while the read is under way, and read again afterwards', async () => {
    const spec = defaultSpec();
    let reads = 0;
    const master = new FakeHost('master', (argv) => {
      if (!argv.includes('get')) return undefined;
      reads += 1;
      return { stdout: '{"Network":"172.30.0.0/16"}\n' };
    });
    const ctx = testStepContext(spec, { master });
    const key = '/klab/network/config';
    const values = await Promise.all(spec.vms.map(() => etcdValue(ctx, key)));
    expect(values).toEqual(spec.vms.map(() => '{"Network":"172.30.0.0/16"}'));
    expect(reads).toBe(1);
    await etcdValue(ctx, key);
    expect(reads).toBe(2);
    // Another context (another wait) never shares a read with this one.
    await Promise.all([etcdValue(ctx, key), etcdValue(testStepContext(spec, { master }), key)]);
    expect(reads).toBe(4);
  });
});
