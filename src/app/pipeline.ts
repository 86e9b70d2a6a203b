/** Runs the ordered steps: one step at a time, on all its VMs in parallel. */
import type { Step, StepContext } from '../../provision/lib/step.js';
import { KlabError } from '../model/errors.js';
import { task } from '../model/events.js';
import { interrupt } from '../model/interrupt.js';
import type { LabSpec, VmPlan } from '../model/spec.js';
import { type LabState, markStepDone } from '../model/state.js';

/**
 * The steps up to and including `until` (all of them when it is undefined). An id that is
 * not a step is a usage error that lists the ones there are.
 */
export function stepsThrough<T extends { id: string }>(steps: readonly T[], until?: string): T[] {
  if (until === undefined) return [...steps];
  const index = steps.findIndex((step) => step.id === until);
  if (index < 0) {
    throw new KlabError('KLAB_USAGE', `there is no provisioning step "${until}"`, {
      hint: `The steps, in order: ${steps.map((step) => step.id).join(', ')}.`,
    });
  }
  return steps.slice(0, index + 1);
}

/** Whether the state records the step as done on every VM it runs on. */
export function doneEverywhere(
  step: Pick<Step, 'id' | 'targets'>,
  spec: LabSpec,
  state: LabState,
): boolean {
  const vms = step.targets ? step.targets(spec) : spec.vms;
  return vms.every((vm) => state.steps[vm.name]?.[step.id] !== undefined);
}

/** Whether the state records the step as done on any VM. */
export function doneAnywhere(step: Pick<Step, 'id'>, state: LabState): boolean {
  return Object.values(state.steps).some((vmSteps) => vmSteps[step.id] !== undefined);
}

export interface PipelineHooks {
  /**
   * After a step succeeded on every VM: state is saved and the checkpoint taken here.
   * `changed`: this step or an earlier one in the run changed something.
   */
  afterStep?(step: Step, changed: boolean): Promise<void>;
}

export interface StepOutcome {
  step: string;
  vm: string;
  result: 'applied' | 'already-done';
}

/**
 * The VMs a step runs on: its targets, or, when the run is about some VMs only (`only`: a VM
 * joining the lab), those of its targets, unless what the step makes covers the whole lab.
 */
export function stepVms(step: Step, spec: LabSpec, only?: ReadonlySet<string>): VmPlan[] {
  const vms = step.targets ? step.targets(spec) : spec.vms;
  if (!only || step.coversLab) return vms;
  return vms.filter((vm) => only.has(vm.name));
}

export async function runSteps(
  steps: readonly Step[],
  ctx: StepContext,
  state: LabState,
  hooks: PipelineHooks = {},
  only?: ReadonlySet<string>,
): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  // Once a step changed something, every later checkpoint is stale too (it holds the old
  // state of that step), so it is retaken even where the later step had nothing to do.
  let changedSoFar = false;
  for (const step of steps) {
    // A safe point: every earlier step is done and recorded in the state.
    interrupt.throwIfRequested(
      `Run "klab create" again to resume at "${step.id}"; the steps done so far are kept.`,
    );
    const vms = stepVms(step, ctx.spec, only);
    if (only && vms.length === 0) continue;
    const results = await task(
      ctx.sink,
      step.title,
      async (update) => {
        const runOne = async (vm: VmPlan): Promise<StepOutcome> => {
          if (await step.check(ctx, vm)) {
            // Under software emulation a second look at a step found done costs as much as
            // the first (a minute for the control plane): only where verify sees more.
            if (!step.checkVerifies) await step.verify(ctx, vm);
            return { step: step.id, vm: vm.name, result: 'already-done' };
          }
          update(`${vm.name}: applying`);
          await step.apply(ctx, vm);
          await step.verify(ctx, vm);
          return { step: step.id, vm: vm.name, result: 'applied' };
        };
        const settled = step.oneAtATime?.(ctx)
          ? await inTurn(vms, runOne)
          : await Promise.allSettled(vms.map(runOne));
        const failure = settled.find((entry) => entry.status === 'rejected');
        if (failure) throw (failure as PromiseRejectedResult).reason;
        return settled.map((entry) => (entry as PromiseFulfilledResult<StepOutcome>).value);
      },
      {
        describe: (done) => {
          const applied = done.filter((entry) => entry.result === 'applied').length;
          return applied === 0 ? 'already done' : `${applied}/${done.length} VMs changed`;
        },
        code: (done) =>
          done.some((entry) => entry.result === 'applied') ? 'STEP_APPLIED' : 'STEP_ALREADY_DONE',
        failedCode: 'STEP_FAILED',
        subject: step.id,
      },
    );
    const now = new Date(ctx.clock.now());
    for (const outcome of results) markStepDone(state, outcome.vm, step.id, now);
    outcomes.push(...results);
    changedSoFar ||= results.some((outcome) => outcome.result === 'applied');
    await hooks.afterStep?.(step, changedSoFar);
  }
  return outcomes;
}

/** One VM after the other; the first failure ends the turn (the later VMs are not started). */
async function inTurn<T>(
  vms: readonly VmPlan[],
  run: (vm: VmPlan) => Promise<T>,
): Promise<PromiseSettledResult<T>[]> {
  const settled: PromiseSettledResult<T>[] = [];
  for (const vm of vms) {
    try {
      settled.push({ status: 'fulfilled', value: await run(vm) });
    } catch (reason) {
      settled.push({ status: 'rejected', reason });
      break;
    }
  }
  return settled;
}
