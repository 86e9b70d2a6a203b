/**
 * A service step is mostly data: the files it installs, the systemd units it runs, and the
 * probes that say it is healthy. serviceStep turns that into check/apply/verify:
 *   problems = files that differ + units not running + (once they run) the first probe
 *              that reports something;
 *   apply    = `before` (data dirs, a key in etcd) + write what differs + start or restart
 *              + `after`;
 *   verify   = wait (timeouts.health) until there are no problems, then say which are left;
 *   settle   = the same wait on the result alone (units and probes, files not compared).
 */

import type { LabSpec, VmPlan } from '../../src/model/spec.js';
import type { Placement } from '../../src/model/topology.js';
import { probeStep } from './cluster.js';
import { changedFiles, journalTail, type ManagedFile, putFiles, startUnits } from './guest.js';
import { type Probe, unitsActive } from './probes.js';
import type { Step, StepContext } from './step.js';

export interface ServiceStepDefinition {
  id: string;
  title: string;
  /** Where it runs: a placement, or a function of the spec (etcd: its members). */
  on?: Placement | ((spec: LabSpec) => VmPlan[]);
  units: readonly string[];
  files(ctx: StepContext, vm: VmPlan): ManagedFile[] | Promise<ManagedFile[]>;
  /** Looked at in order once the units run; the first with problems ends the list. */
  probes?: readonly Probe[];
  /** Problems looked at before the units (something the units read, like a key in etcd). */
  requires?: readonly Probe[];
  /** on-change: restart only when a file changed (else start); always: restart every apply. */
  restart?: 'on-change' | 'always';
  before?(ctx: StepContext, vm: VmPlan): Promise<void>;
  /** After the units started (what only a running unit makes possible). */
  after?(ctx: StepContext, vm: VmPlan): Promise<void>;
  /** One VM at a time (see Step.oneAtATime). */
  oneAtATime?(ctx: StepContext): boolean;
  /** The hint of a failure; by default, the first unit's journal. */
  hint?(vm: VmPlan): string;
  /** Problems that show the units running and still getting there (see probeStep). */
  alive?(
    problems: readonly string[],
    ctx: StepContext,
    vm: VmPlan,
  ): boolean | string | Promise<boolean | string>;
}

export function journalHint(vm: VmPlan, units: readonly string[], lines = 50): string {
  const flags = units.map((unit) => `-u ${unit}`).join(' ');
  return `Look at the log: klab ssh ${vm.name} -- sudo journalctl ${flags} -n ${lines}`;
}

/** The result alone: what the units need, the units running, the probes answering. */
export function serviceOutcome(definition: ServiceStepDefinition): Probe {
  return async (ctx, vm) => {
    const problems: string[] = [];
    for (const probe of definition.requires ?? []) problems.push(...(await probe(ctx, vm)));
    const stopped = await unitsActive(definition.units)(ctx, vm);
    if (stopped.length > 0) return [...problems, ...stopped];
    for (const probe of definition.probes ?? []) {
      const found = await probe(ctx, vm);
      if (found.length > 0) return [...problems, ...found];
    }
    return problems;
  };
}

/** A managed file on the VM that is not what klab writes (as serviceProblems says it). */
export function fileDiffers(path: string): string {
  return `${path} differs`;
}

export function isFileDiffers(problem: string): boolean {
  return /^\/\S+ differs$/.test(problem);
}

/** What to do about a managed file that differs: waiting does not change it. */
export function fileDiffersHint(step: string, vm: string): string {
  return `klab writes this file differently: the lab, or the checkpoint it was reset to, was made by another klab version, or the file was edited by hand. "klab create" applies the ${step} step again (it writes the file and restarts the service); to keep a hand edit, look at it first (klab ssh ${vm} -- cat <the file>).`;
}

export function serviceProblems(definition: ServiceStepDefinition): Probe {
  const outcome = serviceOutcome(definition);
  return async (ctx, vm) => {
    const files = await definition.files(ctx, vm);
    const problems = (await changedFiles(ctx.host(vm.name), files)).map((file) =>
      fileDiffers(file.path),
    );
    return [...problems, ...(await outcome(ctx, vm))];
  };
}

export function serviceStep(definition: ServiceStepDefinition): Step {
  const [mainUnit = definition.id] = definition.units;
  const outcome = serviceOutcome(definition);
  const common = {
    id: definition.id,
    title: definition.title,
    ...(definition.on ? { on: definition.on } : {}),
    async apply(ctx: StepContext, vm: VmPlan) {
      await definition.before?.(ctx, vm);
      const written = await putFiles(ctx.host(vm.name), await definition.files(ctx, vm));
      const restart = definition.restart === 'always' || written.length > 0;
      await startUnits(ctx.host(vm.name), definition.units, restart);
      await definition.after?.(ctx, vm);
    },
    waits: true,
    hint: definition.hint ?? ((vm: VmPlan) => journalHint(vm, definition.units)),
    diagnose: (ctx: StepContext, vm: VmPlan) => journalTail(ctx.host(vm.name), mainUnit),
    ...(definition.alive ? { alive: definition.alive } : {}),
  };
  const step = probeStep({
    ...common,
    problems: serviceProblems(definition),
    lasting: isFileDiffers,
    lastingHint: (vm) => fileDiffersHint(definition.id, vm.name),
  });
  // The same bounded, slow-or-broken wait, on the result alone.
  const settled = probeStep({ ...common, problems: outcome });
  return {
    ...step,
    outcome,
    settle: settled.verify,
    live: true,
    ...(definition.oneAtATime ? { oneAtATime: definition.oneAtATime } : {}),
  };
}
