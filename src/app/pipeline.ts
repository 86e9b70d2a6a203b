/** Runs the ordered steps: one step at a time, on all its VMs in parallel. */
import type { Step, StepContext } from '../../provision/lib/step.js';
import { task } from '../model/events.js';
import { interrupt } from '../model/interrupt.js';
import { type LabState, markStepDone } from '../model/state.js';

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

export async function runSteps(
  steps: readonly Step[],
  ctx: StepContext,
  state: LabState,
  hooks: PipelineHooks = {},
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
    const vms = step.targets ? step.targets(ctx.spec) : ctx.spec.vms;
    const results = await task(
      ctx.sink,
      step.title,
      async (update) => {
        const settled = await Promise.allSettled(
          vms.map(async (vm): Promise<StepOutcome> => {
            if (await step.check(ctx, vm)) {
              await step.verify(ctx, vm);
              return { step: step.id, vm: vm.name, result: 'already-done' };
            }
            update(`${vm.name}: applying`);
            await step.apply(ctx, vm);
            await step.verify(ctx, vm);
            return { step: step.id, vm: vm.name, result: 'applied' };
          }),
        );
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
