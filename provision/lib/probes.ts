/**
 * Named, reusable probes: each looks at one thing on a VM and returns what is wrong with it
 * (an empty list: nothing). Steps and checks compose them, as testcontainers composes waits.
 */
import type { VmPlan } from '../../src/model/spec.js';
import { firstEtcdMember } from '../../src/model/topology.js';
import { etcdctl, etcdctlSays, etcdHealthArgs, kubectl } from './cluster.js';
import { waitFor } from './guest.js';
import type { StepContext } from './step.js';

export type Probe = (ctx: StepContext, vm: VmPlan) => Promise<string[]>;

/** Every unit active (running); names the ones that are not. */
export function unitsActive(units: readonly string[]): Probe {
  return async (ctx, vm) => {
    if (units.length === 0) return [];
    const result = await ctx
      .host(vm.name)
      .run(['systemctl', 'is-active', ...units], { allowFailure: true });
    if (result.exitCode === 0) return [];
    const states = result.stdout.split('\n').map((line) => line.trim());
    return units
      .filter((_, index) => states[index] !== 'active')
      .map((unit) => `${unit} is not running`);
  };
}

/** An HTTP(S) URL answers 2xx from the VM itself (curl on the guest). */
export function httpOk(name: string, url: (vm: VmPlan) => string): Probe {
  return async (ctx, vm) => {
    const result = await ctx
      .host(vm.name)
      .run(['curl', '-fsS', '--max-time', '5', url(vm)], { allowFailure: true });
    return result.exitCode === 0 ? [] : [`${name}: ${result.stderr.trim() || 'no answer'}`];
  };
}

/** A command on the VM exits 0; else `problem`. */
export function commandOk(
  argv: readonly string[],
  problem: string,
  options: { sudo?: boolean } = {},
): Probe {
  return async (ctx, vm) => {
    const result = await ctx
      .host(vm.name)
      .run(argv, { allowFailure: true, sudo: options.sudo ?? false });
    return result.exitCode === 0 ? [] : [problem];
  };
}

/** This etcd member answers `etcdctl endpoint health`. */
export function etcdHealthy(): Probe {
  return async (ctx, vm) => {
    const health = await etcdctl(ctx, vm, etcdHealthArgs(ctx), { allowFailure: true });
    return health.exitCode === 0
      ? []
      : [`etcd is not healthy: ${etcdctlSays(health.stderr || health.stdout)}`];
  };
}

/** A key in etcd (read on the first member) holds exactly `value`. */
export function etcdKeyIs(key: string, value: (ctx: StepContext) => string): Probe {
  return async (ctx) =>
    (await etcdValue(ctx, key)) === value(ctx)
      ? []
      : [`the value of ${key} in etcd is not the lab's`];
}

/** Reads of a key under way, per context: the VMs of one wait share one etcdctl. */
const readsUnderWay = new WeakMap<StepContext, Map<string, Promise<string>>>();

/**
 * The value of a key in etcd, in the API the stack's flannel reads ('' when absent). Callers
 * that ask at the same moment with the same context share one read: every VM's flannel check
 * asks for the network config, and each read is an etcdctl started on the first member,
 * seconds of its emulated CPU.
 */
export function etcdValue(ctx: StepContext, key: string): Promise<string> {
  let reads = readsUnderWay.get(ctx);
  if (!reads) {
    reads = new Map();
    readsUnderWay.set(ctx, reads);
  }
  const under = reads.get(key);
  if (under) return under;
  const read = readEtcdValue(ctx, key).finally(() => reads.delete(key));
  reads.set(key, read);
  return read;
}

async function readEtcdValue(ctx: StepContext, key: string): Promise<string> {
  const member = firstEtcdMember(ctx.spec);
  const result =
    ctx.profile.flannelEtcdApi === 'v3'
      ? await etcdctl(ctx, member, ['get', key, '--print-value-only'], { allowFailure: true })
      : await etcdctl(ctx, member, ['get', key], { allowFailure: true, api: 'v2' });
  return result.exitCode === 0 ? result.stdout.trim() : '';
}

/** Unhealthy components from `kubectl get componentstatuses` (empty: all healthy). */
export function unhealthyComponents(json: string): string[] {
  const parsed = JSON.parse(json) as {
    items?: {
      metadata?: { name?: string };
      conditions?: { type?: string; status?: string; message?: string }[];
    }[];
  };
  const items = parsed.items ?? [];
  if (items.length === 0) return ['no componentstatuses'];
  return items
    .filter((item) => !item.conditions?.some((c) => c.type === 'Healthy' && c.status === 'True'))
    .map(
      (item) => `${item.metadata?.name ?? '?'}: ${item.conditions?.[0]?.message ?? 'unhealthy'}`,
    );
}

/**
 * kube-apiserver on this VM answers /healthz, then every component of componentstatuses is
 * Healthy (asked with the admin kubectl, aimed at this VM's secure port).
 */
export function controlPlaneHealthy(): Probe {
  return async (ctx, vm) => {
    const here = [`--server=https://${vm.ip}:6443`, '--request-timeout=20s'];
    const ready = await kubectl(ctx, [...here, 'get', '--raw', '/healthz'], {
      allowFailure: true,
    });
    if (ready.stdout.trim() !== 'ok') return [healthzProblem(ready.stdout + ready.stderr)];
    const cs = await kubectl(ctx, [...here, 'get', 'componentstatuses', '-o', 'json'], {
      allowFailure: true,
    });
    if (cs.exitCode !== 0) return [`componentstatuses: ${cs.stderr.trim()}`];
    return unhealthyComponents(cs.stdout);
  };
}

/**
 * kube-apiserver's /healthz (or /readyz) answer as a problem, cut down to what fails:
 * kubectl prints every check of a failing /healthz on one line ("[+]ping ok\n...
 * [-]poststarthook/... failed: reason withheld\n..."), twenty of them in 1.20, and the one
 * that matters comes late. `label` names the endpoint.
 */
export function healthzProblem(output: string, label = 'kube-apiserver /healthz'): string {
  const text = output.trim();
  const checks = [...text.matchAll(/\[([+-])\]([^\s\\"]+) (ok|failed)/g)];
  const failing = checks.filter((check) => check[1] === '-').map((check) => `[-]${check[2]}`);
  if (failing.length === 0) return `${label}: ${text || 'no answer'}`;
  const ok = checks.length - failing.length;
  return `${label}: ${failing.join(', ')} failing (${ok} of ${checks.length} checks ok)`;
}

/** The Ready condition of a node from `kubectl get node -o json`. */
export function nodeReady(json: string): {
  ready: boolean;
  reason: string;
  /** When the kubelet last reported the condition (ms since the epoch; 0 if unknown). */
  heartbeatMs: number;
} {
  const node = JSON.parse(json) as {
    status?: {
      conditions?: {
        type?: string;
        status?: string;
        message?: string;
        lastHeartbeatTime?: string;
      }[];
    };
  };
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  const heartbeat = ready?.lastHeartbeatTime ? Date.parse(ready.lastHeartbeatTime) : Number.NaN;
  return {
    ready: ready?.status === 'True',
    reason: ready ? (ready.message ?? `Ready=${ready.status}`) : 'no Ready condition yet',
    heartbeatMs: Number.isNaN(heartbeat) ? 0 : heartbeat,
  };
}

/** systemd's "Mon 2026-11-30 06:59:58 UTC" in ms since the epoch (NaN: never started). */
export function systemdTimestampMs(text: string): number {
  const trimmed = text.trim();
  return trimmed ? Date.parse(trimmed) : Number.NaN;
}

/**
 * The VM is a Ready node, as reported by the kubelet running now: a Ready condition older
 * than the kubelet's last start is stale (just after a restart the node still shows the
 * old process's Ready for a few seconds, and then goes NotReady until the new one is up).
 */
export function nodeReadyByCurrentKubelet(): Probe {
  return async (ctx, vm) => {
    const started = await ctx
      .host(vm.name)
      .run(['systemctl', 'show', 'kubelet', '-p', 'ActiveEnterTimestamp', '--value'], {
        allowFailure: true,
      });
    const startedMs = systemdTimestampMs(started.stdout);
    const node = await kubectl(ctx, ['get', 'node', vm.name, '-o', 'json'], {
      allowFailure: true,
    });
    if (node.exitCode !== 0) return [nodeLookupProblem(vm.name, node.stderr)];
    const ready = nodeReady(node.stdout);
    if (!ready.ready) return [`node ${vm.name} is not Ready: ${ready.reason}`];
    if (Number.isFinite(startedMs) && ready.heartbeatMs < startedMs) {
      return [
        `node ${vm.name} shows Ready from before its kubelet restarted: the new kubelet has not reported yet`,
      ];
    }
    return [];
  };
}

/**
 * What a failed `kubectl get node NAME` means: the node is not registered (NotFound), or
 * the API server gave no answer (a timeout on a starved host), which says nothing of the node.
 */
export function nodeLookupProblem(name: string, stderr: string): string {
  if (/NotFound|not found/.test(stderr)) return `node ${name} is not registered`;
  const line = stderr.trim().split('\n').at(-1)?.slice(0, 160) || 'no answer';
  return `the API server did not answer about node ${name}: ${line}`;
}

/** The VM is a registered, Ready node (asked on the master). */
export function nodeIsReady(): Probe {
  return async (ctx, vm) => {
    const node = await kubectl(ctx, ['get', 'node', vm.name, '-o', 'json'], {
      allowFailure: true,
    });
    if (node.exitCode !== 0) return [nodeLookupProblem(vm.name, node.stderr)];
    const ready = nodeReady(node.stdout);
    return ready.ready ? [] : [`node ${vm.name} is not Ready: ${ready.reason}`];
  };
}

/**
 * Waits (up to timeouts.health) until `probe` finds nothing wrong on `vm`; a timeout names
 * what was waited for, the last problems, and where to look.
 */
export async function waitProbe(
  ctx: StepContext,
  vm: VmPlan,
  probe: Probe,
  what: string,
  hint: string,
): Promise<void> {
  await waitFor(
    ctx,
    { what, vm: vm.name, timeoutMs: ctx.spec.timeouts.health * 1000, hint },
    async () => {
      const problems = await probe(ctx, vm);
      return problems.length === 0 ? true : problems.join('; ');
    },
  );
}

/** `systemctl show -p Id,LoadState,ActiveState UNIT...` -> one entry per unit, in order. */
export function unitStates(show: string): { unit: string; loaded: boolean; active: string }[] {
  return show
    .split(/\n\s*\n/)
    .map((block) => {
      const field = (name: string) =>
        new RegExp(`^${name}=(.*)$`, 'm').exec(block)?.[1]?.trim() ?? '';
      return {
        unit: field('Id').replace(/\.service$/, ''),
        loaded: field('LoadState') === 'loaded',
        active: field('ActiveState'),
      };
    })
    .filter((entry) => entry.unit);
}
