/**
 * A lesson's check, on the live lab: the RESULT of a provisioning step (its units running
 * and its named probes answering, on every VM the step runs on), or a fault repaired.
 * Never the commands typed, never whether a file matches what klab would have written.
 */
import { provisioningSteps } from '../../provision/index.js';
import { waitFor } from '../../provision/lib/guest.js';
import type { Step, StepContext } from '../../provision/lib/step.js';
import { CHECKS, runChecks } from '../checks/index.js';
import { KlabError } from '../model/errors.js';
import { nullSink } from '../model/events.js';
import { type Lesson, parseReference } from '../model/lesson.js';
import { findFault } from './faults.js';

export interface LessonCheckResult {
  passed: boolean;
  /** What is not right yet, each naming the VM and what to look at. */
  problems: string[];
}

export function stepOf(ctx: StepContext, id: string): Step {
  const step = provisioningSteps(ctx.spec).find((entry) => entry.id === id);
  if (!step) throw new KlabError('KLAB_INTERNAL', `no provisioning step "${id}"`);
  return step;
}

async function stepResultProblems(ctx: StepContext, step: Step): Promise<string[]> {
  const vms = step.targets ? step.targets(ctx.spec) : ctx.spec.vms;
  const perVm = await Promise.all(
    vms.map(async (vm) => {
      const found = step.outcome
        ? await step.outcome(ctx, vm)
        : step.problems
          ? await step.problems(ctx, vm)
          : (await step.check(ctx, vm))
            ? []
            : [`"${step.title}" is not done`];
      return found.map((problem) =>
        problem.includes(vm.name) ? problem : `${vm.name}: ${problem}`,
      );
    }),
  );
  return perVm.flat();
}

/**
 * Checks of `klab verify`, as a lesson's check: quietly (no progress lines of their own) and
 * briefly: each waits at most LESSON_CHECK_WAIT_S for what it depends on (a Service's
 * Endpoints, kube-proxy's rules), so a check of something not there yet answers at once.
 */
export const LESSON_CHECK_WAIT_S = 20;

async function verifyCheckProblems(ctx: StepContext, ids: readonly string[]): Promise<string[]> {
  const checks = ids.map((id) => {
    const check = CHECKS.find((entry) => entry.id === id);
    if (!check) throw new KlabError('KLAB_INTERNAL', `no check "${id}"`);
    return check;
  });
  const quick: StepContext = {
    ...ctx,
    sink: nullSink,
    spec: { ...ctx.spec, timeouts: { ...ctx.spec.timeouts, check: LESSON_CHECK_WAIT_S } },
  };
  try {
    await runChecks(quick, checks);
    return [];
  } catch (error) {
    if (error instanceof KlabError && error.code === 'KLAB_VERIFY_FAILED')
      return [...error.details];
    throw error;
  }
}

export async function runLessonCheck(ctx: StepContext, lesson: Lesson): Promise<LessonCheckResult> {
  const ref = parseReference(lesson.check);
  let problems: string[];
  if (ref.kind === 'fault') {
    const fault = findFault(ref.id);
    if (!fault) throw new KlabError('KLAB_INTERNAL', `no fault "${ref.id}"`);
    problems = await fault.problems(ctx);
  } else if (ref.kind === 'check') {
    problems = await verifyCheckProblems(ctx, ref.ids);
  } else {
    problems = await stepResultProblems(ctx, stepOf(ctx, ref.id));
  }
  return { passed: problems.length === 0, problems };
}

/**
 * Waits, bounded by the lab's timeouts.check, until the lesson's check passes (what `klab
 * lesson solve` does after the solution): the last result, or a timeout naming what is
 * still not right.
 */
export async function untilLessonPasses(
  ctx: StepContext,
  lesson: Lesson,
): Promise<LessonCheckResult> {
  let last: LessonCheckResult = { passed: false, problems: [] };
  await waitFor(
    ctx,
    {
      what: `the check of lesson "${lesson.id}"`,
      vm: lesson.steps[0]?.vm ?? 'master',
      timeoutMs: ctx.spec.timeouts.check * 1000,
      intervalMs: 3000,
      hint: 'klab could not finish this lesson: look at "klab verify" and the log.',
    },
    async () => {
      last = await runLessonCheck(ctx, lesson);
      return last.passed ? true : last.problems.join('; ');
    },
  );
  return last;
}
