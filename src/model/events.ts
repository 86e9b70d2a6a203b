/**
 * Everything klab reports is an event with a stable code; only src/ui/ decides how events
 * look. Tests, benchmarks and `--json` match codes, never the English text.
 * The registry below is the list of codes (docs/json-output.md explains the document).
 */
export const EVENT_CODES = {
  // Long work, and how it ended.
  TASK_STARTED: 'a piece of work began',
  TASK_PROGRESS: 'what a running piece of work is doing now',
  TASK_DONE: 'a piece of work ended well',
  TASK_FAILED: 'a piece of work failed (the error follows)',
  STEP_APPLIED: 'a provisioning step changed at least one VM (subject: the step id)',
  STEP_ALREADY_DONE: 'a provisioning step found every VM already as it should be',
  STEP_FAILED: 'a provisioning step failed on a VM',
  CHECK_PASSED: 'a cluster check of klab verify passed (subject: the check id)',
  CHECK_FAILED: 'a cluster check failed',
  CHECK_NOT_RUN: 'a check was not run because one it needs failed',
  OUTPUT: 'a line of output from a VM or a tool (shown with --verbose)',
  ARTIFACT_CACHED: 'a stack artifact was found in the cache, verified (subject: its id)',
  ARTIFACT_BUILT: 'a stack artifact was built from Debian sources and Go modules',
  ARTIFACT_FETCHED: 'a stack artifact was downloaded and verified',
  BOX_BUILT: 'a box was built locally with debootstrap (subject: the box name)',
  VMS_BOOTED: 'a batch of VMs booted and answers SSH (subject: their names)',
  SNAPSHOT_TAKEN: 'every VM was snapshotted at one moment (subject: the snapshot name)',
  VMS_REVERTED: 'every VM went back to a snapshot and runs again',
  GUEST_MEMORY_ZEROED:
    'every running guest dropped its page cache and zeroed its free memory before a snapshot',
  CLOCKS_STEPPED: 'every guest clock was set to the host clock',
  LAB_HEALTHY: 'every provisioned part is healthy again (after a reset or a restart)',
  STEP_HEALTHY:
    "after a reset or a restart, one step's part was found healthy on every VM it is done on (subject: the step id)",
  LESSON_FAULT_INJECTED: "a break/fix lesson's fault was injected (subject: the fault id)",
  LESSON_REPAIRED: "klab repaired a break/fix lesson's fault (subject: the fault id)",
  LESSON_DEPLOYED:
    'klab deployed what a lesson asks for, as klab verify would (subject: the app id)',
  // Notices: what the user should know, said once.
  FALLBACK_BOX: 'the default box could not be downloaded: a locally built box is used',
  FALLBACK_STACK: "the pinned stack's sources are unreachable: the mirror-only stack is used",
  FALLBACK_CHECKPOINTS: 'not enough disk for a checkpoint after every step',
  FALLBACK_HYPERVISOR: 'KVM cannot be used: software emulation (TCG) instead',
  IMAGE_STORE_UNUSED:
    'no Docker image store could be made on the host: each VM loads the images itself (the reason follows)',
  HOST_WARNING: 'the host check found something to watch (not a failure)',
  LOCK_TAKEN_OVER: "the lab's lock was left by a run that no longer exists",
  VMS_RESUMED: 'VMs left paused by an interrupted run were resumed',
  DRIFT_AFTER_RESTART: 'after a restart, a provisioned part is not as it was',
  STEP_SLOW:
    'a step hit timeouts.health while its part runs and is still getting there: klab waits longer',
  CHECK_SLOW:
    'a cluster check hit timeouts.check while its pods were still starting: klab waits longer',
  NODE_RESUMED: 'klab node add found the VM in klab.yaml already: it finishes the join',
  SPEC_UPDATED: 'klab changed klab.yaml (a node added or removed)',
  DRAIN_INCOMPLETE: 'kubectl drain did not finish; the pods go with the Node object',
  SNAPSHOT_HALTED_LAB: 'the snapshot reset to holds a halted lab',
  ARTIFACT_PINNED: 'an artifact without an official checksum was pinned in klab.lock.json',
  ARTIFACT_REPINNED: 'a locally built artifact was rebuilt from changed inputs and re-pinned',
  INTERRUPT_REQUESTED: 'Ctrl-C/SIGTERM: klab stops at the next safe point',
  UI_NOT_LOOPBACK: 'klab ui listens beyond this machine (--listen): only the token guards the page',
  // Results: what a command answers.
  LAB_INITIALIZED: 'klab init wrote (or found current) klab.yaml and the Vagrantfile',
  LAB_READY: 'klab create finished: the cluster is built and verified',
  LAB_BUILT_UP_TO: 'klab create --until STEP finished: the steps through STEP are done, no more',
  LAB_UP: 'klab up finished',
  LAB_HALTED: 'klab halt finished',
  LAB_DESTROYED: "klab destroy removed the lab's VMs, disks, networks and snapshots",
  LAB_NOTHING_TO_DESTROY:
    'klab destroy found no lab there (no Vagrantfile, state or libvirt domain): nothing was removed',
  LAB_RESET: 'klab reset put every VM back to a snapshot',
  LAB_STATUS: 'klab status: one row per VM',
  VERIFY_PASSED: 'every cluster check passed',
  SNAPSHOT_SAVED: 'a snapshot of every VM was saved',
  SNAPSHOT_DELETED: 'a snapshot was deleted',
  SNAPSHOTS_PRUNED: 'checkpoints (or all snapshots) were deleted',
  SNAPSHOT_LIST: "the lab's snapshots",
  ARTIFACT_LIST: "the stack's artifacts and their cache state",
  ARTIFACTS_DONE: 'an artifacts action (pull, verify, export, import) finished',
  CERT_LIST: "the lab's certificates",
  CERTS_GENERATED: 'the PKI was generated or brought up to date',
  CERTS_CHECKED: 'every certificate and kubeconfig was checked',
  DOCTOR_REPORT: 'the host check',
  BOX_LIST: 'the boxes klab can build',
  BOX_READY: 'a locally built box is ready',
  LESSON_LIST: 'the lessons with the progress kept in the lab',
  LESSON_STARTED: "the lab is at the lesson's start (checkpoint, fault); its text follows",
  LESSON_TEXT: "a lesson's text",
  LESSON_HINT: "a lesson's next hint",
  LESSON_PASSED: "a lesson's check passed on the live lab",
  LESSON_SOLVED: 'klab did the lesson (its solution) and its check passed',
  NODE_ADDED: 'klab node add: the VM joined, its node is Ready and ran a test pod',
  NODE_REMOVED: 'klab node remove: the VM and every trace of it are gone',
  ETCD_BACKED_UP: 'klab etcd backup: a checked snapshot copied to the lab directory',
  ETCD_RESTORED: 'klab etcd restore: every member rebuilt from a backup, the cluster started again',
  UI_LISTENING: 'klab ui serves the page; the text holds its URL with the token',
  UI_ACTION_DONE: 'an action started from the klab ui page ended (ok or failed, with its code)',
  UI_STOPPED: 'klab ui stopped serving (Ctrl-C)',
} as const;

export type EventCode = keyof typeof EVENT_CODES;

/** Machine-readable payload of a result: what `--json` prints as the document's data. */
export type ResultData = Record<string, unknown>;

export type KlabEvent =
  | { kind: 'task-start'; code: 'TASK_STARTED'; id: string; title: string }
  | { kind: 'task-update'; code: 'TASK_PROGRESS'; id: string; text: string }
  | {
      kind: 'task-end';
      code: EventCode;
      id: string;
      title: string;
      ok: boolean;
      ms: number;
      detail?: string | undefined;
      /** What it was about: a step id, a check id. */
      subject?: string | undefined;
    }
  | { kind: 'notice'; code: EventCode; level: 'info' | 'warn'; text: string }
  /** A line of output from a VM or a tool (shown with --verbose, always logged). */
  | { kind: 'output'; code: 'OUTPUT'; source: string; line: string }
  /** What the command answers: text for people (stdout), data for --json. */
  | { kind: 'result'; code: EventCode; text: string; data?: ResultData };

export interface EventSink {
  emit(event: KlabEvent): void;
}

export const nullSink: EventSink = { emit() {} };

export function notice(
  sink: EventSink,
  code: EventCode,
  text: string,
  level: 'info' | 'warn' = 'warn',
): void {
  sink.emit({ kind: 'notice', code, level, text });
}

export function output(sink: EventSink, source: string, line: string): void {
  sink.emit({ kind: 'output', code: 'OUTPUT', source, line });
}

/**
 * The line handler for a build script: `klab-progress: TEXT` lines update the task, the
 * rest is OUTPUT (shown with --verbose, always logged).
 */
export function scriptLines(
  sink: EventSink,
  source: string,
  update: (text: string) => void,
): (line: string) => void {
  return (line) => {
    if (line.startsWith('klab-progress: ')) update(line.slice('klab-progress: '.length));
    else output(sink, source, line);
  };
}

export function result(sink: EventSink, code: EventCode, text: string, data?: ResultData): void {
  sink.emit({ kind: 'result', code, text, ...(data ? { data } : {}) });
}

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface TaskOptions<T> {
  /** The detail of the end line ("3 issued, 20 reused"). */
  describe?: (value: T) => string | undefined;
  /** The code of the end event when it went well (default TASK_DONE), from the value. */
  code?: (value: T) => EventCode;
  /** The code when it failed (default TASK_FAILED). */
  failedCode?: EventCode;
  subject?: string;
}

let taskCounter = 0;

/** Run `fn` as a reported task: start, optional updates, then ok or failed with its duration. */
export async function task<T>(
  sink: EventSink,
  title: string,
  fn: (update: (text: string) => void) => Promise<T>,
  options: TaskOptions<T> | ((value: T) => string | undefined) = {},
): Promise<T> {
  const opts: TaskOptions<T> = typeof options === 'function' ? { describe: options } : options;
  taskCounter += 1;
  const id = `t${taskCounter}`;
  const started = Date.now();
  sink.emit({ kind: 'task-start', code: 'TASK_STARTED', id, title });
  try {
    const value = await fn((text) =>
      sink.emit({ kind: 'task-update', code: 'TASK_PROGRESS', id, text }),
    );
    sink.emit({
      kind: 'task-end',
      code: opts.code?.(value) ?? 'TASK_DONE',
      id,
      title,
      ok: true,
      ms: Date.now() - started,
      detail: opts.describe?.(value),
      subject: opts.subject,
    });
    return value;
  } catch (error) {
    sink.emit({
      kind: 'task-end',
      code: opts.failedCode ?? 'TASK_FAILED',
      id,
      title,
      ok: false,
      ms: Date.now() - started,
      subject: opts.subject,
    });
    throw error;
  }
}
