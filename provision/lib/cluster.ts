/** Shared by the cluster steps and checks: kubectl and etcdctl on the VMs, probe steps. */

import { KlabError } from '../../src/model/errors.js';
import { notice } from '../../src/model/events.js';
import { ADMIN_KUBECONFIG, GUEST } from '../../src/model/guest-paths.js';
import type { RemoteResult, RemoteRunOptions } from '../../src/model/remote.js';
import type { LabSpec, VmPlan } from '../../src/model/spec.js';
import { firstMaster, type Placement, placed } from '../../src/model/topology.js';
import type { InstallProfile } from '../../src/stacks/install.js';
import { waitFor } from './guest.js';
import type { Step, StepContext } from './step.js';

/** The etcd binary's path: Debian packages put it in /usr/bin, archives in /opt/k8s/bin. */
export function etcdBinary(profile: InstallProfile, name: 'etcd' | 'etcdctl'): string {
  return profile.etcd.kind === 'deb' ? `/usr/bin/${name}` : `${GUEST.bin}/${name}`;
}

/**
 * kubectl as cluster admin: from the host when the context can (no program start inside an
 * emulated VM), else on the first master.
 */
export function kubectl(
  ctx: StepContext,
  args: readonly string[],
  options: RemoteRunOptions = {},
): Promise<RemoteResult> {
  if (ctx.adminKubectl) return ctx.adminKubectl(args, { timeoutMs: 120_000, ...options });
  return kubectlOnMaster(ctx, args, options);
}

/** kubectl as cluster admin on the first master, with the admin kubeconfig klab put there. */
export function kubectlOnMaster(
  ctx: StepContext,
  args: readonly string[],
  options: RemoteRunOptions = {},
): Promise<RemoteResult> {
  return ctx
    .host(firstMaster(ctx.spec).name)
    .run([`${GUEST.bin}/kubectl`, `--kubeconfig=${ADMIN_KUBECONFIG}`, ...args], {
      sudo: true,
      timeoutMs: 120_000,
      ...options,
    });
}

/** etcdctl (v3 API) on an etcd member, authenticated with that member's certificate. */
export function etcdctl(
  ctx: StepContext,
  member: VmPlan,
  args: readonly string[],
  options: RemoteRunOptions & { api?: 'v2' | 'v3' } = {},
): Promise<RemoteResult> {
  const pki = GUEST.etcdPki;
  const api = options.api ?? 'v3';
  const tls =
    api === 'v3'
      ? [
          `--endpoints=https://${member.ip}:2379`,
          `--cacert=${pki}/etcd-ca.crt`,
          `--cert=${pki}/etcd-server-${member.name}.crt`,
          `--key=${pki}/etcd-server-${member.name}.key`,
        ]
      : [
          `--endpoints=https://${member.ip}:2379`,
          `--ca-file=${pki}/etcd-ca.crt`,
          `--cert-file=${pki}/etcd-server-${member.name}.crt`,
          `--key-file=${pki}/etcd-server-${member.name}.key`,
        ];
  return ctx.host(member.name).run([etcdBinary(ctx.profile, 'etcdctl'), ...tls, ...args], {
    sudo: true,
    timeoutMs: 60_000,
    ...options,
    env: { ETCDCTL_API: api === 'v3' ? '3' : '2', ...(options.env ?? {}) },
  });
}

/**
 * What etcdctl said, in its own words for a person: etcdctl 3.4 also writes its client
 * library's retry warnings to stderr as JSON log lines ({"level":"warn",...}), which bury
 * the line that matters ("https://...:2379 is unhealthy: failed to commit proposal: context
 * deadline exceeded"). Those are dropped, and so is the closing "Error: unhealthy cluster"
 * when a line says more; the rest is joined with "; ".
 */
export function etcdctlSays(output: string): string {
  return etcdctlLines(output).join('; ');
}

/** etcdctlSays's lines, one by one. */
export function etcdctlLines(output: string): string[] {
  const lines = output
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !/^\{"level":/.test(line));
  const specific = lines.filter((line) => !/^Error: unhealthy cluster$/.test(line));
  return specific.length > 0 ? specific : lines;
}

/**
 * `etcdctl endpoint health` with a commit deadline fit for the lab: etcdctl's default 5 s is
 * short for three members on a loaded TCG host, where one commit takes 1-3 s and sometimes
 * more; a member that needs longer than an election timeout is not healthy anyway.
 */
export function etcdHealthArgs(ctx: StepContext): string[] {
  return [
    `--command-timeout=${Math.max(5, Math.ceil(ctx.tuning.etcdElectionMs / 1000))}s`,
    'endpoint',
    'health',
  ];
}

/** Step.targets for a placement (absent for every VM). */
export function targetsOf(
  on: Placement | ((spec: LabSpec) => VmPlan[]) | undefined,
): Pick<Step, 'targets'> {
  if (on === undefined || on === 'all') return {};
  return { targets: typeof on === 'function' ? on : (spec) => placed(spec, on) };
}

/**
 * Most cluster steps are "these things should be true on the VM": `problems` lists what is
 * not (empty = done), `apply` fixes it, and verify waits until `problems` is empty.
 */
export function probeStep(definition: {
  id: string;
  title: string;
  /** Where it runs: a placement, or a function of the spec (etcd: its members). */
  on?: Placement | ((spec: LabSpec) => VmPlan[]);
  problems(ctx: StepContext, vm: VmPlan): Promise<string[]>;
  apply(ctx: StepContext, vm: VmPlan): Promise<void>;
  /** verify waits up to timeouts.health (klab.yaml) for the problems to clear. */
  waits?: boolean;
  hint(vm: VmPlan): string;
  diagnose?(ctx: StepContext, vm: VmPlan): Promise<string>;
  /**
   * Whether the problems left at the deadline show the part running and still getting
   * there (slow, not broken): then verify says so and waits, once, up to twice as long again.
   * It may look further than the problems (the cluster's CSRs, a unit's restarts); a
   * string is "yes, because ...", said in the STEP_SLOW notice.
   */
  alive?(
    problems: readonly string[],
    ctx: StepContext,
    vm: VmPlan,
  ): boolean | string | Promise<boolean | string>;
  /**
   * Problems no wait mends (a file klab manages that differs from what it writes: only
   * apply rewrites it). verify fails at once on them, with `lastingHint`, instead of
   * waiting out timeouts.health: broken, not slow.
   */
  lasting?(problem: string): boolean;
  lastingHint?(vm: VmPlan): string;
}): Step {
  return {
    id: definition.id,
    title: definition.title,
    ...targetsOf(definition.on),
    problems: definition.problems,
    async check(ctx, vm) {
      return (await definition.problems(ctx, vm)).length === 0;
    },
    checkVerifies: true,
    apply: definition.apply,
    async verify(ctx, vm) {
      const settle = definition.waits ? ctx.spec.timeouts.health * 1000 : 0;
      if (settle === 0) {
        const problems = await definition.problems(ctx, vm);
        if (problems.length === 0) return;
        throw new KlabError(
          'KLAB_STEP_FAILED',
          `${definition.id} on ${vm.name}: ${problems.join('; ')}`,
          {
            vm: vm.name,
            hint: definition.hint(vm),
            details: problems,
            outputTail: definition.diagnose
              ? await definition.diagnose(ctx, vm).catch(() => undefined)
              : undefined,
          },
        );
      }
      let last: string[] = [];
      // The first look is kept for the wait's first probe (one look, not two).
      let firstLook: string[] | undefined;
      if (definition.lasting) {
        last = await definition.problems(ctx, vm);
        if (last.length === 0) return;
        firstLook = last;
        const lasting = last.filter((problem) => definition.lasting?.(problem));
        if (lasting.length > 0) {
          throw new KlabError(
            'KLAB_STEP_FAILED',
            `${definition.id} on ${vm.name}: ${lasting.join('; ')}`,
            {
              vm: vm.name,
              hint: definition.lastingHint?.(vm) ?? definition.hint(vm),
              details: last,
            },
          );
        }
      }
      const probe = async (): Promise<true | string> => {
        last = firstLook ?? (await definition.problems(ctx, vm));
        firstLook = undefined;
        return last.length === 0 ? true : last.join('; ');
      };
      const wait = (what: string, timeoutMs: number) =>
        waitFor(
          ctx,
          {
            what,
            vm: vm.name,
            timeoutMs,
            hint: definition.hint(vm),
            ...(definition.diagnose
              ? { diagnose: () => definition.diagnose?.(ctx, vm) ?? Promise.resolve('') }
              : {}),
          },
          probe,
        );
      try {
        await wait(`${definition.id} on ${vm.name}`, settle);
      } catch (error) {
        const verdict =
          error instanceof KlabError && error.code === 'KLAB_TIMEOUT' && last.length > 0
            ? await Promise.resolve(definition.alive?.(last, ctx, vm)).catch(() => false)
            : false;
        if (verdict === false || verdict === undefined || verdict === '') throw error;
        const because = typeof verdict === 'string' ? `: ${verdict}` : '';
        notice(
          ctx.sink,
          'STEP_SLOW',
          `${definition.id} on ${vm.name} is slow, not broken, after ${Math.round(settle / 1000)} s (${last.join('; ').slice(0, 200)})${because}; klab waits up to ${Math.round((2 * settle) / 1000)} s more. A loaded host or software emulation does this; raise timeouts.health in klab.yaml to wait longer from the start.`,
        );
        await wait(
          `${definition.id} on ${vm.name} (slow: still ${last.join('; ').slice(0, 120)})`,
          2 * settle,
        );
      }
    },
  };
}
