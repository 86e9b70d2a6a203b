/** klab snapshot save/list/delete/prune and klab reset: the lab as one unit. */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { provisioningSteps } from '../../provision/index.js';
import type { Step, StepContext } from '../../provision/lib/step.js';
import { KlabError } from '../model/errors.js';
import { type Clock, systemClock, task } from '../model/events.js';
import { interrupt } from '../model/interrupt.js';
import { libvirtNames } from '../model/lab-paths.js';
import {
  assertComplete,
  checkpointName,
  isCheckpoint,
  type LabSnapshot,
  labSnapshots,
  validateSnapshotName,
} from '../model/snapshots.js';
import type { LabSpec } from '../model/spec.js';
import { type LabState, saveState } from '../model/state.js';
import { stepGuestClock } from './guest-clock.js';
import { zeroFreeMemory } from './guest-memory.js';
import {
  type Lab,
  type LabRequest,
  openLab,
  requireCreated,
  stepContext,
  withHosts,
} from './lab.js';
import { doneAnywhere, runSteps } from './pipeline.js';
import type { HostPool } from './session.js';

async function domainsOf(lab: Lab): Promise<{ vm: string; domain: string; state: string }[]> {
  const names = libvirtNames(lab.spec);
  return Promise.all(
    lab.spec.vms.map(async (vm) => {
      const domain = names.domain(vm.name);
      const state = await lab.libvirt.domainState(domain);
      if (!state) {
        throw new KlabError(
          'KLAB_NO_LAB',
          `VM ${vm.name} does not exist (no libvirt domain ${domain})`,
          {
            hint: 'Create the lab first with "klab create".',
          },
        );
      }
      return { vm: vm.name, domain, state };
    }),
  );
}

export async function listSnapshots(lab: Lab): Promise<LabSnapshot[]> {
  const names = libvirtNames(lab.spec);
  const perVm = new Map<string, { name: string; createdAt: number; stateBytes: number }[]>();
  // Three commands a VM, every VM at once: a reset or a checkpoint save starts with this
  // list, and one command per snapshot (15 of them on a provisioned lab) cost seconds.
  const listed = await Promise.all(
    lab.spec.vms.map(async (vm) => {
      const domain = names.domain(vm.name);
      const snaps = await lab.libvirt.snapshots(domain);
      if (snaps.length === 0) return { vm: vm.name, snaps: [] };
      const [sizes, times] = await Promise.all([
        lab.libvirt.snapshotStateSizes(domain),
        lab.libvirt.snapshotCreationTimes(domain),
      ]);
      return {
        vm: vm.name,
        snaps: snaps.map((name) => ({
          name,
          createdAt: times.get(name) ?? 0,
          stateBytes: sizes?.get(name) ?? 0,
        })),
      };
    }),
  );
  for (const { vm, snaps } of listed) perVm.set(vm, snaps);
  return labSnapshots(perVm);
}

/** Pause every running VM, snapshot every VM, resume: one consistent moment for the lab. */
export async function saveSnapshot(
  lab: Lab,
  name: string,
  options: {
    automatic?: boolean;
    replace?: boolean;
    /** Open SSH sessions to step the clocks with; `connect` opens them when VMs run. */
    pool?: HostPool;
    connect?: boolean;
  } = {},
): Promise<void> {
  validateSnapshotName(name, options.automatic);
  const domains = await domainsOf(lab);
  if (!options.pool && options.connect && domains.some((d) => d.state === 'running')) {
    // One set of SSH sessions for zeroing guest memory before and clocks after.
    return withHosts(lab, (pool) => saveSnapshot(lab, name, { ...options, pool, connect: false }));
  }
  const existing = (await listSnapshots(lab)).find((snap) => snap.name === name);
  if (existing && !options.replace) {
    throw new KlabError('KLAB_USAGE', `the lab already has a snapshot "${name}"`, {
      hint: `Delete it first ("klab snapshot delete ${name}") or pick another name.`,
    });
  }
  interrupt.throwIfRequested(`No snapshot was taken; run "klab snapshot save ${name}" again.`);
  return task(
    lab.sink,
    `Snapshot "${name}" of ${domains.length} VMs`,
    async () => {
      if (existing) await deleteSnapshotEverywhere(lab, name);
      const running = domains.filter((d) => d.state === 'running');
      const runningVms = running.map((d) => d.vm);
      if (running.length > 0 && options.pool) await zeroGuestMemory(lab, options.pool, runningVms);
      const taken: string[] = [];
      let failure: { vm: string; error: unknown } | undefined;
      try {
        // Every VM paused together, then every VM saved at once: each domain's QEMU writes
        // its own disk, so the saves share the host's cores instead of queueing.
        // (allSettled: every pause has ended, one way or the other, before the resume below.)
        const paused = await Promise.allSettled(running.map((d) => lab.libvirt.suspend(d.domain)));
        const notPaused = paused.find((result) => result.status === 'rejected');
        if (notPaused) throw notPaused.reason;
        const saved = await Promise.allSettled(
          domains.map((d) =>
            lab.libvirt.createSnapshot(
              d.domain,
              name,
              `klab lab ${lab.spec.name}${options.automatic ? ' (checkpoint)' : ''}`,
            ),
          ),
        );
        saved.forEach((result, index) => {
          const d = domains[index] as (typeof domains)[number];
          if (result.status === 'fulfilled') taken.push(d.domain);
          else failure ??= { vm: d.vm, error: result.reason };
        });
        if (failure) {
          // All or nothing: a snapshot of only some VMs (some etcd members) is worse than none.
          await Promise.all(
            taken.map((domain) => lab.libvirt.deleteSnapshot(domain, name).catch(() => undefined)),
          );
        }
      } finally {
        await Promise.all(running.map((d) => lab.libvirt.resume(d.domain).catch(() => undefined)));
      }
      if (failure) {
        const cause = failure.error;
        throw new KlabError(
          'KLAB_SNAPSHOT_FAILED',
          `snapshot "${name}" failed on ${failure.vm}; the ${taken.length} VM(s) already saved were rolled back, so no VM has it, and every VM runs again`,
          {
            vm: failure.vm,
            outputTail: cause instanceof KlabError ? cause.outputTail : (cause as Error).message,
            hint: 'A full disk is the usual cause: free space under /var/lib/libvirt/images (df -h; "klab snapshot prune" drops checkpoints), then try again.',
            cause,
          },
        );
      }
      // A paused guest's clock stood still: put it right, or TLS sees the future.
      if (running.length > 0 && options.pool) await stepClocks(lab, options.pool);
      await mkdir(path.dirname(stepsFile(lab, name)), { recursive: true });
      await writeFile(
        stepsFile(lab, name),
        `${JSON.stringify({ steps: lab.state.steps }, null, 2)}\n`,
      );
    },
    { code: () => 'SNAPSHOT_TAKEN', subject: name },
  );
}

/**
 * Every running guest drops its page cache (the code its programs have mapped included) and
 * zeroes its free memory, so the saved state holds what the guests use, not what they once
 * read (see guest-memory.ts).
 */
async function zeroGuestMemory(lab: Lab, pool: HostPool, vms: readonly string[]): Promise<void> {
  await task(
    lab.sink,
    "Drop page caches (programs' mapped code too) and zero free guest memory (a smaller checkpoint)",
    async () => {
      return Promise.all(vms.map((vm) => zeroFreeMemory(pool.get(vm))));
    },
    {
      describe: (results) => {
        const mib = results.reduce((sum, result) => sum + result.filledMib, 0);
        const byKernel = results.filter((result) => result.kernelZeroes).length;
        const released = results.reduce((sum, result) => sum + result.releasedMib, 0);
        const paged = results.reduce((sum, result) => sum + result.pagedOutMib, 0);
        const amount = (m: number) => (m >= 1024 ? `${(m / 1024).toFixed(1)} GiB` : `${m} MiB`);
        return [
          `${amount(released)} of page cache released (${amount(paged)} of it programs' mapped code)`,
          ...(byKernel < results.length ? [`${(mib / 1024).toFixed(1)} GiB zeroed`] : []),
          ...(byKernel > 0 ? [`${byKernel} VM(s) zero freed pages themselves (init_on_free)`] : []),
        ].join('; ');
      },
      code: () => 'GUEST_MEMORY_ZEROED',
    },
  );
}

/** Which steps were done when a snapshot was taken: a reset makes that the lab's state again. */
function stepsFile(lab: Lab, name: string): string {
  return path.join(path.dirname(lab.paths.stateFile), 'snapshots', `${name}.json`);
}

async function restoreSteps(lab: Lab, name: string): Promise<void> {
  const saved = await readFile(stepsFile(lab, name), 'utf8').catch(() => undefined);
  if (!saved) return;
  lab.state.steps = (JSON.parse(saved) as { steps: LabState['steps'] }).steps;
  await saveState(lab.paths.stateFile, lab.state);
}

async function deleteSnapshotEverywhere(lab: Lab, name: string): Promise<number> {
  const names = libvirtNames(lab.spec);
  let deleted = 0;
  for (const vm of lab.spec.vms) {
    const domain = names.domain(vm.name);
    if ((await lab.libvirt.snapshots(domain)).includes(name)) {
      await lab.libvirt.deleteSnapshot(domain, name);
      deleted += 1;
    }
  }
  await rm(stepsFile(lab, name), { force: true });
  return deleted;
}

export async function deleteSnapshot(lab: Lab, name: string): Promise<void> {
  const deleted = await task(lab.sink, `Delete snapshot "${name}"`, () =>
    deleteSnapshotEverywhere(lab, name),
  );
  if (deleted === 0) {
    throw new KlabError('KLAB_SNAPSHOT_MISSING', `the lab has no snapshot "${name}"`, {
      hint: 'See what there is with "klab snapshot list".',
    });
  }
}

/** Free space: delete the automatic checkpoints (and, with all, every snapshot). */
export async function pruneSnapshots(lab: Lab, all: boolean): Promise<string[]> {
  const victims = (await listSnapshots(lab)).filter((snap) => all || isCheckpoint(snap.name));
  for (const snap of victims) await deleteSnapshotEverywhere(lab, snap.name);
  return victims.map((snap) => snap.name);
}

/**
 * The clock step as a reported task (after a pause, a revert or a resume). `preset`: the VMs
 * whose clock the guest agent already set (setClocksByAgent), which are only measured.
 */
export function stepClocksTask(
  lab: Lab,
  pool: HostPool,
  preset: ReadonlySet<string> = new Set(),
): Promise<number> {
  return task(
    lab.sink,
    'Step every guest clock to the host clock',
    () => stepClocks(lab, pool, preset),
    {
      describe: (skew) => `within ${skew.toFixed(1)} s`,
      code: () => 'CLOCKS_STEPPED',
    },
  );
}

/**
 * Every guest clock set to the host's through its guest agent, all at once, with no SSH:
 * started as the VMs resume after a revert, so it runs beside the SSH connections and the
 * guests leave the saved moment's time seconds sooner. The VMs whose agent answered.
 */
export async function setClocksByAgent(lab: Pick<Lab, 'spec' | 'libvirt'>): Promise<Set<string>> {
  const names = libvirtNames(lab.spec);
  const set = await Promise.all(
    lab.spec.vms.map((vm) => lab.libvirt.setGuestTimeNow(names.domain(vm.name)).catch(() => false)),
  );
  return new Set(lab.spec.vms.filter((_, index) => set[index]).map((vm) => vm.name));
}

/** The steps a health wait looks at: all, or only those whose health can change (Step.live). */
export function stepsToWaitFor(spec: LabSpec, liveOnly: boolean): readonly Step[] {
  return provisioningSteps(spec).filter((step) => !liveOnly || step.live === true);
}

/** Carries a step's failed verifies out of its reported task (which then ends failed). */
class UnhealthyStep extends Error {
  constructor(readonly failures: StepFailure[]) {
    super(`${failures.length} VM(s) not healthy`);
  }
}

/**
 * Waits (each step's verify, bounded by timeouts.health) until every step done on a VM is
 * healthy again. Returns what is not; with stopAtFirst, stops after the first step that has
 * failures (a later step only waits out its timeout on a broken base); with liveOnly, looks
 * only at the steps whose health can change while the lab stands still (Step.live): after
 * a revert, the rest is byte for byte as it was saved.
 */
export async function unhealthySteps(
  lab: Lab,
  ctx: StepContext,
  options: { stopAtFirst?: boolean; liveOnly?: boolean; resultOnly?: boolean } = {},
): Promise<StepFailure[]> {
  return waitStepsHealthy(
    lab,
    stepsToWaitFor(lab.spec, options.liveOnly === true),
    ctx,
    options.stopAtFirst === true,
    options.resultOnly === true,
  );
}

export interface StepFailure {
  vm: string;
  step: string;
  error: unknown;
}

/**
 * The loop of unhealthySteps, over given steps: each step's verify on the VMs it is done on,
 * all at once, as one reported task per step (STEP_HEALTHY, subject the step id, when it ends
 * well): the user sees what is waited for, and the times say which part a slow reset waited on.
 * With resultOnly, each step's settle (its result alone, files not compared) where it has one.
 */
export async function waitStepsHealthy(
  lab: Pick<Lab, 'spec' | 'state' | 'sink'>,
  steps: readonly Pick<Step, 'id' | 'verify' | 'settle'>[],
  ctx: StepContext,
  stopAtFirst: boolean,
  resultOnly = false,
): Promise<StepFailure[]> {
  const failures: StepFailure[] = [];
  for (const step of steps) {
    const done = lab.spec.vms.filter((vm) => lab.state.steps[vm.name]?.[step.id]);
    if (done.length === 0) continue;
    const failed = await task(
      lab.sink,
      `${step.id} healthy on ${done.map((vm) => vm.name).join(', ')}`,
      async () => {
        const wait = (resultOnly && step.settle) || step.verify;
        const results = await Promise.allSettled(done.map((vm) => wait(ctx, vm)));
        const found = results.flatMap((result, index): StepFailure[] =>
          result.status === 'rejected'
            ? [{ vm: done[index]?.name ?? '?', step: step.id, error: result.reason }]
            : [],
        );
        if (found.length > 0) throw new UnhealthyStep(found);
        return found;
      },
      { code: () => 'STEP_HEALTHY', subject: step.id },
    ).catch((error: unknown) => {
      if (error instanceof UnhealthyStep) return error.failures;
      throw error;
    });
    failures.push(...failed);
    if (stopAtFirst && failures.length > 0) break;
  }
  return failures;
}

/** Step every guest clock to the host's; returns the worst remaining skew (s). */
export async function stepClocks(
  lab: Lab,
  pool: HostPool,
  preset: ReadonlySet<string> = new Set(),
): Promise<number> {
  const names = libvirtNames(lab.spec);
  const results = await Promise.all(
    lab.spec.vms.map((vm) =>
      stepGuestClock(
        {
          vm: vm.name,
          host: pool.get(vm.name),
          setByAgent: () => lab.libvirt.setGuestTimeNow(names.domain(vm.name)),
          alreadySet: preset.has(vm.name),
        },
        systemClock,
      ),
    ),
  );
  return Math.max(0, ...results.map((result) => result.skewS));
}

/** The VMs whose part of a snapshot is missing or damaged (its metadata or its disk state). */
async function unusableSnapshots(
  lab: Lab,
  domains: readonly { vm: string; domain: string }[],
  name: string,
): Promise<{ vm: string; why: string }[]> {
  // Every domain at once; the problems keep the lab's VM order.
  const checked = await Promise.all(
    domains.map(async (d): Promise<{ vm: string; why: string } | undefined> => {
      if (!(await lab.libvirt.snapshots(d.domain)).includes(name)) {
        return { vm: d.vm, why: 'no such snapshot' };
      }
      // libvirt keeps the metadata; the saved state lives in the qcow2 disk. Both must be there.
      const onDisk = await lab.libvirt.snapshotStateSizes(d.domain);
      if (onDisk && !onDisk.has(name)) {
        return { vm: d.vm, why: 'libvirt knows it, but the disk image holds no such snapshot' };
      }
      return undefined;
    }),
  );
  return checked.filter((problem) => problem !== undefined);
}

/** Before a revert is tried again: time for the domain's previous libvirt job to end. */
export const REVERT_RETRY_PAUSE_MS = 3000;

/**
 * Reverts every domain to one snapshot, all at once; each is left paused (or shut off, if
 * the snapshot held a halted VM). A revert that fails is tried once more (libvirt can refuse
 * while a job of the domain is still ending). If one still fails, nothing is resumed: the
 * VMs already back wait paused, so no VM runs beside another from a different moment, and
 * the error says that running the reset again finishes it (every VM goes back again).
 */
export async function revertEvery(
  lab: Lab,
  domains: readonly { vm: string; domain: string }[],
  name: string,
  clock: Clock = systemClock,
): Promise<void> {
  const revert = (domain: string) =>
    lab.libvirt.revertSnapshot(domain, name).catch(async () => {
      await clock.sleep(REVERT_RETRY_PAUSE_MS);
      return lab.libvirt.revertSnapshot(domain, name);
    });
  const results = await Promise.allSettled(domains.map((d) => revert(d.domain)));
  const failed = domains.filter((_, index) => results[index]?.status === 'rejected');
  if (failed.length === 0) return;
  const back = domains.filter((_, index) => results[index]?.status === 'fulfilled');
  const first = results.find((result) => result.status === 'rejected') as PromiseRejectedResult;
  const reason = first.reason as { outputTail?: string; message?: string } | undefined;
  throw new KlabError(
    'KLAB_RESET_INCOMPLETE',
    `reset to "${name}" failed on ${failed.map((d) => d.vm).join(', ')}` +
      (back.length > 0
        ? `; ${back.map((d) => d.vm).join(', ')} reverted and left paused (not resumed), so no VM runs out of step with the others`
        : '; no VM went back'),
    {
      ...(reason?.outputTail || reason?.message
        ? { outputTail: reason.outputTail ?? reason.message }
        : {}),
      details: failed.map((d) => `${d.vm}: ${d.domain} was not reverted`),
      hint: `Run "klab reset ${name}" again: every VM goes back again and the lab runs once all are back. If it fails on the same VM again, pick another snapshot ("klab snapshot list").`,
      cause: first.reason,
    },
  );
}

export interface ResetResult {
  snapshot: string;
  seconds: number;
}

export async function resetLab(
  request: LabRequest,
  name: string | undefined,
): Promise<ResetResult> {
  return resetOpenLab(await openLab(request), name);
}

/** klab reset on an opened lab: every VM back to one snapshot, or none at all. */
export async function resetOpenLab(lab: Lab, name: string | undefined): Promise<ResetResult> {
  const sink = lab.sink;
  // A lab that was never created has no snapshots: say that, without asking libvirt.
  requireCreated(lab);
  const started = Date.now();
  const snapshots = await listSnapshots(lab);
  const wanted = name ?? snapshots[0]?.name;
  if (!wanted) {
    throw new KlabError('KLAB_SNAPSHOT_MISSING', 'the lab has no snapshots to reset to', {
      hint: 'Save one with "klab snapshot save NAME".',
    });
  }
  const snapshot = assertComplete(
    snapshots.find((snap) => snap.name === wanted),
    wanted,
    lab.spec.vms.map((vm) => vm.name),
  );
  const domains = await domainsOf(lab);
  // All or nothing: make sure every VM can go back before the first one does.
  const unusable = await unusableSnapshots(lab, domains, snapshot.name);
  if (unusable.length > 0) {
    throw new KlabError(
      'KLAB_SNAPSHOT_MISSING',
      `snapshot "${snapshot.name}" cannot be restored on ${unusable.map((u) => u.vm).join(', ')}; nothing was reverted`,
      {
        details: unusable.map((u) => `${u.vm}: ${u.why}`),
        hint: 'Pick another snapshot ("klab snapshot list"), or delete this one with "klab snapshot delete".',
      },
    );
  }
  interrupt.throwIfRequested(`Nothing was reverted; run "klab reset ${snapshot.name}" again.`);
  await task(
    sink,
    `Revert every VM to "${snapshot.name}"`,
    async () => {
      // All at once (each loads its own saved state; libvirt runs one job per domain), and
      // every one paused until the last is back.
      await revertEvery(lab, domains, snapshot.name);
      // Resume together, so no VM (no etcd member) runs ahead of the others.
      for (const d of domains) {
        if ((await lab.libvirt.domainState(d.domain)) === 'paused')
          await lab.libvirt.resume(d.domain);
      }
    },
    { code: () => 'VMS_REVERTED', subject: snapshot.name },
  );
  await restoreSteps(lab, snapshot.name);
  // Every VM is reverted and resumed together; stopping here leaves a consistent lab.
  interrupt.throwIfRequested(
    `Every VM is back at "${snapshot.name}"; clocks and health were not checked: run "klab reset ${snapshot.name}" again or "klab verify".`,
  );
  const running = await Promise.all(
    domains.map(async (d) => (await lab.libvirt.domainState(d.domain)) === 'running'),
  );
  if (running.every(Boolean)) {
    // The clocks through the guest agents while SSH connects (neither waits on the other).
    const preset = setClocksByAgent(lab);
    await withHosts(lab, async (pool) => {
      await stepClocksTask(lab, pool, await preset);
      await task(
        sink,
        'Wait until the lab is healthy again',
        async () => {
          // The disks and memory are as saved; what runs may have lost its leases or peers
          // while the clock jumped: those parts are waited for, in order, on their result
          // (the files are as saved: klab's, or the learner's own from a lesson done by hand).
          const [first] = await unhealthySteps(lab, stepContext(lab, pool), {
            stopAtFirst: true,
            liveOnly: true,
            resultOnly: true,
          });
          if (first) throw first.error;
        },
        { code: () => 'LAB_HEALTHY' },
      );
    });
  } else {
    sink.emit({
      kind: 'notice',
      code: 'SNAPSHOT_HALTED_LAB',
      level: 'info',
      text: 'The snapshot holds a halted lab; start it with "klab up".',
    });
  }
  return { snapshot: snapshot.name, seconds: (Date.now() - started) / 1000 };
}

function laterStepDone(lab: Lab, stepId: string): boolean {
  const steps = provisioningSteps(lab.spec);
  const index = steps.findIndex((step) => step.id === stepId);
  return steps.slice(index + 1).some((step) => doneAnywhere(step, lab.state));
}

/**
 * Runs steps as "klab create" does: after each, the state is saved and the checkpoint after
 * it taken (in the lab's checkpoint mode). `klab create` and `klab lesson solve` both use it,
 * so a step solved by a lesson leaves the same checkpoint a create would.
 */
export async function runStepsWithCheckpoints(
  lab: Lab,
  pool: HostPool,
  steps: readonly Step[],
  ctx: StepContext,
): Promise<void> {
  const all = provisioningSteps(lab.spec);
  const checkpoint = checkpointHook(lab, pool, {
    mode: lab.state.checkpoints ?? 'every-step',
    lastStep: all[all.length - 1]?.id ?? '',
  });
  await runSteps(steps, ctx, lab.state, {
    afterStep: async (step, changed) => {
      await saveState(lab.paths.stateFile, lab.state);
      await checkpoint(step.id, changed);
    },
  });
}

/** The pipeline hook: a checkpoint after each step, when the spec wants them. */
export function checkpointHook(
  lab: Lab,
  pool?: HostPool,
  options: { mode?: 'every-step' | 'last-step' | 'none'; lastStep?: string } = {},
) {
  let mode = options.mode ?? (lab.spec.snapshots.automatic ? 'every-step' : 'none');
  return async (stepId: string, changed: boolean) => {
    if (mode === 'none') return;
    if (mode === 'last-step' && stepId !== options.lastStep) return;
    const name = checkpointName(stepId);
    // A checkpoint after a step holds the lab just after it: with a later step already done
    // (a lesson went ahead, then "klab create" resumed), it would hold more and mislead
    // whoever starts from it. Better none than a wrong one.
    if (laterStepDone(lab, stepId)) return;
    const exists = (await listSnapshots(lab)).some((snap) => snap.name === name);
    if (exists && !changed) return;
    try {
      await saveSnapshot(lab, name, { automatic: true, replace: true, ...(pool ? { pool } : {}) });
    } catch (error) {
      // A checkpoint is a convenience: a full disk must not cost the lab being built. The
      // failed one was rolled back on every VM; say so, and take only the last one from now.
      if (!(error instanceof KlabError) || error.code !== 'KLAB_SNAPSHOT_FAILED') throw error;
      const text = `Checkpoint ${name} could not be saved (${error.outputTail ?? error.message}); klab goes on without it and keeps only the checkpoint after the last step. Free disk space and save one by hand with "klab snapshot save NAME".`;
      lab.sink.emit({ kind: 'notice', code: 'FALLBACK_CHECKPOINTS', level: 'warn', text });
      if (mode === 'every-step') mode = 'last-step';
    }
  };
}
