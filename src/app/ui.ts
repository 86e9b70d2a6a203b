/**
 * What `klab ui`'s page asks of the lab (model/web-ui.ts): the lab at a glance, the
 * lessons, and the actions a learner starts from the page. Every action is the same
 * application call as its command (`klab lesson check` = checkLesson, ...), so the page and
 * the terminal give the same verdict; the ones that change the lab hold its lock, as the
 * commands do.
 */
import { existsSync } from 'node:fs';
import { provisioningSteps } from '../../provision/index.js';
import { unitStates } from '../../provision/lib/probes.js';
import { isKlabError } from '../model/errors.js';
import type { EventSink, KlabEvent } from '../model/events.js';
import { libvirtNames } from '../model/lab-paths.js';
import type {
  UiAction,
  UiActionResult,
  UiBackend,
  UiCheckResult,
  UiLesson,
  UiLessonItem,
  UiOverview,
  UiStep,
  UiVerifyReport,
  UiVmComponents,
} from '../model/web-ui.js';
import { LAB_UNITS } from './guest-doctor.js';
import { type Lab, type LabRequest, openCreatedLab, openLab } from './lab.js';
import {
  checkLesson,
  listLessons,
  nextHint,
  showLesson,
  solveLesson,
  startLesson,
} from './lessons.js';
import { acquireLabLock, labLockHolder } from './lock.js';
import { connectAll } from './session.js';
import { listSnapshots, resetLab, saveSnapshot } from './snapshots.js';
import { verifyLab } from './verify.js';

/** Actions that change the lab: they hold its lock, like the commands that do the same. */
const WRITES: ReadonlySet<UiAction['kind']> = new Set([
  'lesson-start',
  'lesson-solve',
  'snapshot-save',
  'snapshot-restore',
]);

function rolesOf(lab: Lab, vm: string): string[] {
  const plan = lab.spec.vms.find((entry) => entry.name === vm);
  return [plan?.role ?? 'node', ...(lab.spec.etcdMembers.includes(vm) ? ['etcd'] : [])];
}

/** The lab's units on each running VM: one `systemctl show` per VM. */
async function componentsOf(lab: Lab): Promise<Record<string, UiVmComponents>> {
  const found: Record<string, UiVmComponents> = {};
  const names = libvirtNames(lab.spec);
  const running: string[] = [];
  if (existsSync(lab.paths.vagrantfile)) {
    for (const vm of lab.spec.vms) {
      if ((await lab.libvirt.domainState(names.domain(vm.name))) === 'running')
        running.push(vm.name);
    }
  }
  if (running.length === 0) return found;
  const units = LAB_UNITS.map((entry) => entry.unit);
  const quiet: EventSink = { emit() {} };
  try {
    const pool = await connectAll(lab.vagrant, running, quiet, 20_000);
    try {
      await Promise.all(
        running.map(async (vm) => {
          const show = await pool
            .get(vm)
            .run(['systemctl', 'show', '-p', 'Id,LoadState,ActiveState', ...units], {
              allowFailure: true,
              timeoutMs: 20_000,
            })
            .catch((error: unknown) => ({ stdout: '', error: (error as Error).message }));
          // Only what klab set up on this VM so far (packages may bring a unit early).
          const installed = new Set(
            LAB_UNITS.filter((entry) => lab.state.steps[vm]?.[entry.step]).map(
              (entry) => entry.unit,
            ),
          );
          const components = unitStates(show.stdout)
            .filter((entry) => entry.loaded && installed.has(entry.unit))
            .map((entry) => ({ unit: entry.unit, active: entry.active }));
          found[vm] = { components, ...('error' in show ? { error: show.error } : {}) };
        }),
      );
    } finally {
      await pool.closeAll();
    }
  } catch (error) {
    for (const vm of running) found[vm] = { components: [], error: (error as Error).message };
  }
  return found;
}

async function overviewOf(lab: Lab, verify: UiVerifyReport | undefined): Promise<UiOverview> {
  const names = libvirtNames(lab.spec);
  const created = existsSync(lab.paths.vagrantfile);
  const states = new Map<string, string>();
  for (const vm of lab.spec.vms) {
    const state = created ? await lab.libvirt.domainState(names.domain(vm.name)) : undefined;
    states.set(vm.name, state ?? 'not created');
  }
  const steps: UiStep[] = provisioningSteps(lab.spec).map((step) => {
    const vms = (step.targets ? step.targets(lab.spec) : lab.spec.vms).map((vm) => vm.name);
    return { id: step.id, vms, doneOn: vms.filter((vm) => lab.state.steps[vm]?.[step.id]) };
  });
  const checkpoints = created
    ? (await listSnapshots(lab).catch(() => [])).map((snapshot) => ({
        name: snapshot.name,
        ...(snapshot.afterStep ? { afterStep: snapshot.afterStep } : {}),
        stateBytes: snapshot.stateBytes,
        createdAt: snapshot.createdAt,
      }))
    : [];
  const holder = labLockHolder(lab.paths.klabDir);
  return {
    name: lab.spec.name,
    dir: lab.paths.dir,
    vms: lab.spec.vms.map((vm) => {
      const mine = steps.filter((step) => step.vms.includes(vm.name));
      return {
        name: vm.name,
        roles: rolesOf(lab, vm.name),
        ip: vm.ip,
        state: states.get(vm.name) ?? 'not created',
        stepsDone: mine.filter((step) => step.doneOn.includes(vm.name)).length,
        stepsTotal: mine.length,
        ssh: `klab ssh ${vm.name}`,
      };
    }),
    steps,
    checkpoints,
    ...(verify ? { verify } : {}),
    ...(holder ? { lockedBy: `${holder.command} (PID ${holder.pid})` } : {}),
  };
}

/** The checks of a verify run, from its events (passed, failed and not run alike). */
function checksFrom(events: readonly KlabEvent[]): UiCheckResult[] {
  const checks: UiCheckResult[] = [];
  for (const event of events) {
    if (event.kind !== 'task-end') continue;
    if (!['CHECK_PASSED', 'CHECK_FAILED', 'CHECK_NOT_RUN'].includes(event.code)) continue;
    checks.push({
      id: event.subject ?? event.title,
      name: event.title,
      ok: event.ok && event.code === 'CHECK_PASSED',
      ...(event.detail ? { detail: event.detail } : {}),
    });
  }
  return checks;
}

function failure(error: unknown): UiActionResult {
  if (isKlabError(error)) {
    return {
      ok: false,
      code: error.code,
      message: error.message,
      ...(error.details.length > 0 ? { details: [...error.details] } : {}),
      ...(error.hint ? { hint: error.hint } : {}),
    };
  }
  return { ok: false, code: 'KLAB_INTERNAL', message: (error as Error).message ?? String(error) };
}

/** The page's backend for the lab in `request.dir`. */
export function labUiBackend(request: Omit<LabRequest, 'sink'>): UiBackend {
  let lastVerify: UiVerifyReport | undefined;
  const quiet: EventSink = { emit() {} };

  async function act(action: UiAction, sink: EventSink): Promise<UiActionResult> {
    const labRequest: LabRequest = { ...request, sink };
    switch (action.kind) {
      case 'lesson-check': {
        const report = await checkLesson(labRequest, action.id);
        return {
          ok: true,
          code: 'LESSON_PASSED',
          message: `Passed: "${report.lesson.title.en}" is done on the live lab.`,
        };
      }
      case 'lesson-hint': {
        const hint = await nextHint(labRequest, action.id);
        return {
          ok: true,
          code: 'LESSON_HINT',
          message: `Hint ${hint.number} of ${hint.total}`,
          text: hint.text,
        };
      }
      case 'lesson-solve': {
        const report = await solveLesson(labRequest, action.id);
        return {
          ok: true,
          code: 'LESSON_SOLVED',
          message: `Solved by klab, and the check of "${report.lesson.title.en}" passes.`,
        };
      }
      case 'lesson-start': {
        const started = await startLesson(labRequest, action.id, { here: action.here === true });
        return {
          ok: true,
          code: 'LESSON_STARTED',
          message: `The lab is at the start of "${started.lesson.title.en}" (${started.seconds.toFixed(0)} s).`,
        };
      }
      case 'verify': {
        const events: KlabEvent[] = [];
        const recording: EventSink = {
          emit(event) {
            events.push(event);
            sink.emit(event);
          },
        };
        const started = Date.now();
        const at = () => new Date().toISOString();
        const seconds = () => Math.round((Date.now() - started) / 1000);
        try {
          const results = await verifyLab({ ...request, sink: recording });
          lastVerify = {
            at: at(),
            passed: true,
            seconds: seconds(),
            checks: results.map((check) => ({
              id: check.id,
              name: check.name,
              ok: check.ok,
              detail: check.detail,
            })),
          };
          return {
            ok: true,
            code: 'VERIFY_PASSED',
            message: `All ${results.length} cluster checks passed (${lastVerify.seconds} s).`,
            verify: lastVerify,
          };
        } catch (error) {
          const failed = failure(error);
          lastVerify = {
            at: at(),
            passed: false,
            seconds: seconds(),
            checks: checksFrom(events),
            error: `${failed.code}: ${failed.message}`,
          };
          return { ...failed, verify: lastVerify };
        }
      }
      case 'snapshot-save': {
        const lab = await openCreatedLab(labRequest);
        await saveSnapshot(lab, action.name, { connect: true });
        return {
          ok: true,
          code: 'SNAPSHOT_SAVED',
          message: `Saved "${action.name}". Go back to it with: klab reset ${action.name}`,
        };
      }
      case 'snapshot-restore': {
        const reset = await resetLab(labRequest, action.name);
        return {
          ok: true,
          code: 'LAB_RESET',
          message: `Reset to "${reset.snapshot}" in ${reset.seconds.toFixed(1)} s.`,
        };
      }
    }
  }

  return {
    async overview() {
      return overviewOf(await openLab({ ...request, sink: quiet }), lastVerify);
    },

    async components() {
      return componentsOf(await openLab({ ...request, sink: quiet }));
    },

    async lessons(): Promise<UiLessonItem[]> {
      return (await listLessons({ ...request, sink: quiet })).map((item) => ({ ...item }));
    },

    async lesson(id: string): Promise<UiLesson> {
      const labRequest = { ...request, sink: quiet };
      const lesson = await showLesson(labRequest, id);
      const item = (await listLessons(labRequest)).find((entry) => entry.id === id);
      const shown = Math.min(item?.hintsShown ?? 0, lesson.hints.en.length);
      return {
        lesson,
        hints: Array.from({ length: shown }, (_, index) => ({
          en: lesson.hints.en[index] ?? '',
          'zh-CN': lesson.hints['zh-CN'][index] ?? '',
        })),
        hintsTotal: lesson.hints.en.length,
      };
    },

    async run(action, sink) {
      let lock: { release(): void } | undefined;
      try {
        const lab = await openLab({ ...request, sink });
        if (WRITES.has(action.kind)) {
          lock = acquireLabLock(lab.paths.klabDir, `klab ui: ${action.kind}`, sink);
        }
        return await act(action, sink);
      } catch (error) {
        return failure(error);
      } finally {
        lock?.release();
      }
    },
  };
}
