/**
 * klab lesson: start a lesson (the lab back at its checkpoint, a fault injected for the
 * break/fix ones), show its text, check it on the live lab, give the next hint, solve it
 * (klab does the step or the repair, then checks), go on to the next one. Progress is kept
 * in the lab directory (.klab/lessons.json), so it survives reboots of host and VMs.
 */
import path from 'node:path';
import { provisioningSteps } from '../../provision/index.js';
import type { Step, StepContext } from '../../provision/lib/step.js';
import { type Deployment, findDeployment } from '../checks/index.js';
import { findLesson, loadLessons } from '../lessons/catalog.js';
import {
  type LessonCheckResult,
  runLessonCheck,
  stepOf,
  untilLessonPasses,
} from '../lessons/check.js';
import { findFault } from '../lessons/faults.js';
import { KlabError } from '../model/errors.js';
import { task } from '../model/events.js';
import { readText, writeAtomic } from '../model/files.js';
import {
  emptyProgress,
  type Lesson,
  type LessonProgress,
  type LessonProgressFile,
  parseReference,
} from '../model/lesson.js';
import { checkpointName } from '../model/snapshots.js';
import type { LabSpec } from '../model/spec.js';
import { type LabState, markStepDone, saveState } from '../model/state.js';
import { type Lab, type LabRequest, openCreatedLab, stepContext, withHosts } from './lab.js';
import { bootVms, haltOpenLab } from './lifecycle.js';
import { doneAnywhere, doneEverywhere } from './pipeline.js';
import type { HostPool } from './session.js';
import { listSnapshots, resetOpenLab, runStepsWithCheckpoints } from './snapshots.js';

function progressFile(lab: Lab): string {
  return path.join(path.dirname(lab.paths.stateFile), 'lessons.json');
}

export async function loadProgress(lab: Lab): Promise<LessonProgressFile> {
  const text = await readText(progressFile(lab));
  if (!text) return { lessons: {} };
  try {
    const parsed = JSON.parse(text) as LessonProgressFile;
    return {
      ...(parsed.current ? { current: parsed.current } : {}),
      lessons: parsed.lessons ?? {},
    };
  } catch {
    // A damaged progress file costs the progress, never the lab.
    return { lessons: {} };
  }
}

async function saveProgress(lab: Lab, progress: LessonProgressFile): Promise<void> {
  await writeAtomic(progressFile(lab), `${JSON.stringify(progress, null, 2)}\n`);
}

function progressOf(progress: LessonProgressFile, id: string): LessonProgress {
  progress.lessons[id] ??= emptyProgress();
  return progress.lessons[id];
}

interface LessonSession {
  lab: Lab;
  lessons: Lesson[];
  progress: LessonProgressFile;
}

async function openLessons(request: LabRequest): Promise<LessonSession> {
  const lab = await openCreatedLab(request);
  return { lab, lessons: await loadLessons(lab.spec), progress: await loadProgress(lab) };
}

/** The lesson named, or the current one; says what to do when there is none. */
function pickLesson(session: LessonSession, id: string | undefined): Lesson {
  const wanted = id ?? session.progress.current;
  if (!wanted) {
    throw new KlabError('KLAB_USAGE', 'no lesson is started in this lab', {
      hint: `Start one with "klab lesson start ${session.lessons[0]?.id ?? 'ID'}" (all: "klab lesson list").`,
    });
  }
  return findLesson(session.lessons, wanted);
}

/** Why the lab cannot host this lesson's fault (too few etcd members, ...); undefined: it can. */
function unsupportedBy(lesson: Lesson, lab: Lab): string | undefined {
  const fault = lesson.start.fault ? findFault(lesson.start.fault) : undefined;
  return fault?.unsupported?.(lab.spec);
}

export interface LessonListItem {
  id: string;
  order: number;
  kind: Lesson['kind'];
  minutes: number;
  title: Lesson['title'];
  current: boolean;
  passed: boolean;
  solved: boolean;
  hintsShown: number;
  /** Why this lab cannot run it (absent: it can). */
  unsupported?: string;
}

export async function listLessons(request: LabRequest): Promise<LessonListItem[]> {
  const session = await openLessons(request);
  return session.lessons.map((lesson) => {
    const progress = session.progress.lessons[lesson.id] ?? emptyProgress();
    const unsupported = unsupportedBy(lesson, session.lab);
    return {
      id: lesson.id,
      order: lesson.order,
      kind: lesson.kind,
      minutes: lesson.minutes,
      title: lesson.title,
      current: session.progress.current === lesson.id,
      passed: progress.passedAt !== undefined,
      solved: progress.solved === true,
      hintsShown: progress.hintsShown,
      ...(unsupported ? { unsupported } : {}),
    };
  });
}

export interface StartedLesson {
  lesson: Lesson;
  seconds: number;
  /** Started on the lab as it was (--here), without going back to the checkpoint. */
  here: boolean;
}

export interface StartOptions {
  /**
   * Walk forward: start on the lab as it is, without going back to the checkpoint, when
   * the lab already is where the lesson starts (quick: no reset).
   */
  here?: boolean;
}

/**
 * Why the lab is not where the lesson starts, for --here (undefined: it is): the steps
 * through the checkpoint's step done on every VM, none after it, and the current lesson
 * (if another) passed, so that no unfinished fault is left under the new one.
 */
export function notAtStart(
  lesson: Lesson,
  steps: readonly Pick<Step, 'id' | 'targets'>[],
  spec: LabSpec,
  state: LabState,
  progress: LessonProgressFile,
): string | undefined {
  const index = steps.findIndex((step) => checkpointName(step.id) === lesson.start.checkpoint);
  if (index < 0) return `its checkpoint "${lesson.start.checkpoint}" is after no step`;
  const missing = steps.slice(0, index + 1).filter((step) => !doneEverywhere(step, spec, state));
  if (missing.length > 0) {
    return (
      `it starts after "${steps[index]?.id}", and ${missing.map((step) => `"${step.id}"`).join(', ')} ` +
      `${missing.length === 1 ? 'is' : 'are'} not done on every VM yet ` +
      `("klab create --until ${steps[index]?.id}" builds the lab up to there)`
    );
  }
  const past = steps.slice(index + 1).filter((step) => doneAnywhere(step, state));
  if (past.length > 0) {
    return `the lab is past its start: ${past.map((step) => `"${step.id}"`).join(', ')} ${past.length === 1 ? 'is' : 'are'} done already`;
  }
  const current = progress.current;
  if (current && current !== lesson.id && !progress.lessons[current]?.passedAt) {
    return `the current lesson "${current}" is not done yet (its check has not passed), and its changes would stay under this one`;
  }
  return undefined;
}

/** The lab at the lesson's checkpoint (all VMs, healthy), then its fault injected. */
export async function startLesson(
  request: LabRequest,
  id: string,
  options: StartOptions = {},
): Promise<StartedLesson> {
  const session = await openLessons(request);
  const lesson = findLesson(session.lessons, id);
  return startOpenLesson(session, lesson, options);
}

async function startOpenLesson(
  session: LessonSession,
  lesson: Lesson,
  options: StartOptions = {},
): Promise<StartedLesson> {
  const { lab } = session;
  const started = Date.now();
  const why = unsupportedBy(lesson, lab);
  if (why) {
    throw new KlabError('KLAB_USAGE', `lesson "${lesson.id}" cannot run on this lab: ${why}`, {
      hint: 'Pick another lesson ("klab lesson list" marks the ones this lab can run), or create a lab that has what it needs.',
    });
  }
  if (options.here) {
    const problem = notAtStart(
      lesson,
      provisioningSteps(lab.spec),
      lab.spec,
      lab.state,
      session.progress,
    );
    if (problem) {
      throw new KlabError(
        'KLAB_USAGE',
        `lesson "${lesson.id}" cannot start on the lab as it is: ${problem}`,
        {
          hint: `Without --here, "klab lesson start ${lesson.id}" first puts the lab back at its checkpoint (${lesson.start.checkpoint}).`,
        },
      );
    }
  } else {
    await resetToCheckpoint(lab, lesson);
  }
  for (const id of lesson.start.deploy ?? []) {
    const deployment = findDeployment(id);
    if (!deployment) throw new KlabError('KLAB_INTERNAL', `klab deploys no "${id}"`);
    await withHosts(lab, (pool) => deploy(lab, stepContext(lab, pool), deployment));
  }
  if (lesson.start.fault) {
    const fault = findFault(lesson.start.fault);
    if (!fault) throw new KlabError('KLAB_INTERNAL', `no fault "${lesson.start.fault}"`);
    await withHosts(lab, (pool) =>
      task(
        lab.sink,
        `Break the lab for this lesson (${fault.id})`,
        () => fault.inject(stepContext(lab, pool)),
        { code: () => 'LESSON_FAULT_INJECTED', subject: fault.id },
      ),
    );
  }
  session.progress.current = lesson.id;
  session.progress.lessons[lesson.id] = { ...emptyProgress(), startedAt: new Date().toISOString() };
  await saveProgress(lab, session.progress);
  return { lesson, seconds: (Date.now() - started) / 1000, here: options.here === true };
}

async function resetToCheckpoint(lab: Lab, lesson: Lesson): Promise<void> {
  const checkpoint = lesson.start.checkpoint;
  const snapshots = await listSnapshots(lab);
  if (!snapshots.some((snap) => snap.name === checkpoint)) {
    throw new KlabError(
      'KLAB_SNAPSHOT_MISSING',
      `lesson "${lesson.id}" starts from the checkpoint "${checkpoint}", which this lab does not have`,
      {
        hint: 'Checkpoints are taken by "klab create" after every step when the disk has room (snapshots: {automatic: true}); see "klab snapshot list". Re-create the lab with enough free disk to get them all.',
      },
    );
  }
  await resetOpenLab(lab, checkpoint);
}

export async function showLesson(request: LabRequest, id?: string): Promise<Lesson> {
  return pickLesson(await openLessons(request), id);
}

export interface LessonCheckReport extends LessonCheckResult {
  lesson: Lesson;
}

/** The lesson's check on the live lab; a failure is an error naming what is not right. */
export async function checkLesson(request: LabRequest, id?: string): Promise<LessonCheckReport> {
  const session = await openLessons(request);
  const lesson = pickLesson(session, id);
  const result = await withHosts(session.lab, (pool) =>
    task(session.lab.sink, `Check "${lesson.title.en}"`, () =>
      runLessonCheck(stepContext(session.lab, pool), lesson),
    ),
  );
  await recordCheck(session, lesson, result, false);
  if (!result.passed) throw checkFailed(lesson, result);
  if (recordStepDone(lesson, provisioningSteps(session.lab.spec), session.lab, new Date())) {
    await saveState(session.lab.paths.stateFile, session.lab.state);
  }
  return { ...result, lesson };
}

/**
 * A tutorial lesson whose check passed did its step, by hand: the state says so, as it would
 * after "klab create" or "klab lesson solve", so that the next lesson can start --here.
 * ("klab create" still checks the step itself before it trusts it.) True when it changed.
 */
export function recordStepDone(
  lesson: Lesson,
  steps: readonly Pick<Step, 'id' | 'targets'>[],
  lab: { spec: LabSpec; state: LabState },
  when: Date,
): boolean {
  const ref = parseReference(lesson.check);
  const step = ref.kind === 'step' ? steps.find((entry) => entry.id === ref.id) : undefined;
  if (!step || doneEverywhere(step, lab.spec, lab.state)) return false;
  for (const vm of step.targets ? step.targets(lab.spec) : lab.spec.vms) {
    if (!lab.state.steps[vm.name]?.[step.id]) markStepDone(lab.state, vm.name, step.id, when);
  }
  return true;
}

function checkFailed(lesson: Lesson, result: LessonCheckResult): KlabError {
  return new KlabError('KLAB_LESSON_CHECK_FAILED', `lesson "${lesson.id}" is not done yet`, {
    details: result.problems,
    hint: `Fix what is listed, then "klab lesson check" again; "klab lesson hint" gives a hint, "klab lesson solve" does it for you.`,
    data: { lesson: lesson.id, passed: false, problems: result.problems },
  });
}

async function recordCheck(
  session: LessonSession,
  lesson: Lesson,
  result: LessonCheckResult,
  solved: boolean,
): Promise<void> {
  const progress = progressOf(session.progress, lesson.id);
  progress.checks += 1;
  if (result.passed) {
    progress.passedAt = new Date().toISOString();
    if (solved) progress.solved = true;
  }
  await saveProgress(session.lab, session.progress);
}

export interface LessonHint {
  lesson: Lesson;
  /** 1-based number of the hint shown. */
  number: number;
  total: number;
  /** Per language. */
  text: { en: string; 'zh-CN': string };
}

/** The next hint: a nudge first, then more; the last one again once all were shown. */
export async function nextHint(request: LabRequest, id?: string): Promise<LessonHint> {
  const session = await openLessons(request);
  const lesson = pickLesson(session, id);
  const progress = progressOf(session.progress, lesson.id);
  const total = lesson.hints.en.length;
  const index = Math.min(progress.hintsShown, total - 1);
  progress.hintsShown = Math.min(progress.hintsShown + 1, total);
  await saveProgress(session.lab, session.progress);
  return {
    lesson,
    number: index + 1,
    total,
    text: { en: lesson.hints.en[index] ?? '', 'zh-CN': lesson.hints['zh-CN'][index] ?? '' },
  };
}

/** An app klab deploys as `klab verify` would: applied, then waited for until rolled out. */
function deploy(lab: Lab, ctx: StepContext, deployment: Deployment): Promise<void> {
  return task(
    lab.sink,
    `Deploy ${deployment.id}`,
    async () => {
      await deployment.apply(ctx);
      await deployment.rollout(ctx);
    },
    { code: () => 'LESSON_DEPLOYED', subject: deployment.id },
  );
}

/** The step's provisioner module (recorded in the state) or the fault's repair. */
async function runSolution(
  lab: Lab,
  pool: HostPool,
  ctx: StepContext,
  lesson: Lesson,
): Promise<void> {
  const ref = parseReference(lesson.solution);
  if (ref.kind === 'step') {
    // As "klab create" would: the step recorded, then the checkpoint after it, so that the
    // lessons starting there have it.
    await runStepsWithCheckpoints(lab, pool, [stepOf(ctx, ref.id)], ctx);
    return;
  }
  if (ref.kind === 'reboot') return; // done before the hosts were opened
  if (ref.kind === 'deploy') {
    const deployment = findDeployment(ref.id);
    if (!deployment) throw new KlabError('KLAB_INTERNAL', `klab deploys no "${ref.id}"`);
    await deploy(lab, ctx, deployment);
    return;
  }
  const fault = findFault(ref.id);
  if (!fault) throw new KlabError('KLAB_INTERNAL', `no fault "${ref.id}"`);
  await task(lab.sink, `Repair: ${fault.id}`, () => fault.repair(ctx), {
    code: () => 'LESSON_REPAIRED',
    subject: fault.id,
  });
}

/** Every VM shut down and booted again, as "klab halt" then "klab up" do. */
async function rebootLab(lab: Lab): Promise<void> {
  await haltOpenLab(lab);
  await bootVms(lab);
}

/** klab does the lesson (its solution), then waits, bounded, until its check passes. */
export async function solveLesson(request: LabRequest, id?: string): Promise<LessonCheckReport> {
  const session = await openLessons(request);
  const lesson = pickLesson(session, id);
  const { lab } = session;
  // A reboot drops every connection: it runs before the pool the check uses is opened.
  if (parseReference(lesson.solution).kind === 'reboot') await rebootLab(lab);
  const result = await withHosts(lab, async (pool) => {
    const ctx = stepContext(lab, pool);
    await runSolution(lab, pool, ctx, lesson);
    return task(lab.sink, `Check "${lesson.title.en}"`, () => untilLessonPasses(ctx, lesson));
  });
  await recordCheck(session, lesson, result, true);
  return { ...result, lesson };
}

/** The lesson after the current one (by order), started. */
export async function startNextLesson(
  request: LabRequest,
  options: StartOptions = {},
): Promise<StartedLesson> {
  const session = await openLessons(request);
  const current = session.progress.current;
  const index = current ? session.lessons.findIndex((lesson) => lesson.id === current) : -1;
  const next = session.lessons[index + 1];
  if (!next) {
    throw new KlabError('KLAB_USAGE', 'there is no lesson after the last one', {
      hint: 'See every lesson and your progress with "klab lesson list".',
    });
  }
  return startOpenLesson(session, next, options);
}

/** The current lesson from its start again: checkpoint, fault, hints. */
export async function restartLesson(request: LabRequest): Promise<StartedLesson> {
  const session = await openLessons(request);
  return startOpenLesson(session, pickLesson(session, undefined));
}
