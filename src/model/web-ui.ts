/**
 * What `klab ui`'s page shows and asks for, as data: the application answers these
 * (src/app/ui.ts), the web server serves them (src/ui/web/), browser tests fake them.
 */
import type { EventSink } from './events.js';
import type { Language, Lesson } from './lesson.js';

export interface UiComponent {
  /** The systemd unit (etcd, kube-apiserver, kubelet, ...). */
  unit: string;
  /** systemd's ActiveState: active, failed, inactive, activating, ... */
  active: string;
}

export interface UiVm {
  name: string;
  roles: string[];
  ip: string;
  /** running, shut off, paused, not created, ... */
  state: string;
  stepsDone: number;
  stepsTotal: number;
  /** The command that opens a shell on it. */
  ssh: string;
}

/** The lab's units on a running VM with their state (asked over SSH: slower, asked apart). */
export interface UiVmComponents {
  components: UiComponent[];
  /** Why they are unknown (SSH did not answer). */
  error?: string;
}

export interface UiStep {
  id: string;
  /** VMs it runs on, and those where it is done. */
  vms: string[];
  doneOn: string[];
}

export interface UiCheckpoint {
  name: string;
  afterStep?: string;
  stateBytes: number;
  /** Milliseconds since the epoch (0: unknown). */
  createdAt: number;
}

export interface UiCheckResult {
  id: string;
  name: string;
  ok: boolean;
  /** What it found (passed) or what is wrong (failed). */
  detail?: string;
}

export interface UiVerifyReport {
  /** ISO time it finished. */
  at: string;
  passed: boolean;
  seconds: number;
  checks: UiCheckResult[];
  /** The error that ended it (code: message), when it failed. */
  error?: string;
}

export interface UiOverview {
  name: string;
  dir: string;
  vms: UiVm[];
  steps: UiStep[];
  checkpoints: UiCheckpoint[];
  /** The last `klab verify` run from this page, if any. */
  verify?: UiVerifyReport;
  /** Another klab command holding the lab's lock (it changes the lab now). */
  lockedBy?: string;
}

export interface UiLessonItem {
  id: string;
  order: number;
  kind: Lesson['kind'];
  minutes: number;
  title: Record<Language, string>;
  current: boolean;
  passed: boolean;
  solved: boolean;
  hintsShown: number;
  unsupported?: string;
}

export interface UiLesson {
  lesson: Lesson;
  /** The hints shown so far (the page shows them again), per language. */
  hints: Record<Language, string>[];
  hintsTotal: number;
}

export type UiAction =
  | { kind: 'lesson-check'; id: string }
  | { kind: 'lesson-hint'; id: string }
  | { kind: 'lesson-solve'; id: string }
  /** here: go on with the lab as it is (no reset), as `klab lesson start --here`. */
  | { kind: 'lesson-start'; id: string; here?: boolean }
  | { kind: 'verify' }
  | { kind: 'snapshot-save'; name: string }
  | { kind: 'snapshot-restore'; name: string };

export const UI_ACTION_KINDS: readonly UiAction['kind'][] = [
  'lesson-check',
  'lesson-hint',
  'lesson-solve',
  'lesson-start',
  'verify',
  'snapshot-save',
  'snapshot-restore',
];

/** How an action ended: `ok` with a message, or the error's code and message (and fix). */
export interface UiActionResult {
  ok: boolean;
  /** The result's event code (LESSON_PASSED, VERIFY_PASSED, ...) or the error code. */
  code: string;
  message: string;
  /** What is wrong, one line each (a failed check's problems). */
  details?: string[];
  hint?: string;
  /** Per language where the answer is lesson text (a hint). */
  text?: Record<Language, string>;
  /** The verify report, for verify. */
  verify?: UiVerifyReport;
}

/** The lab as the page needs it. The real one is src/app/ui.ts; tests pass fakes. */
export interface UiBackend {
  /** Quick: what the host knows (libvirt, the state file, snapshots). */
  overview(): Promise<UiOverview>;
  /** Per running VM, the lab's units and their state. */
  components(): Promise<Record<string, UiVmComponents>>;
  lessons(): Promise<UiLessonItem[]>;
  lesson(id: string): Promise<UiLesson>;
  /** Runs one action; events go to `sink` while it runs. Never throws: failures are results. */
  run(action: UiAction, sink: EventSink): Promise<UiActionResult>;
}
