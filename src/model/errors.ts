/**
 * Typed errors. Every failure klab reports has a stable code, says whose fault it is and
 * what to do next. Only src/main.ts turns them into exit codes and printed messages.
 * docs/troubleshooting.md has one entry per code (a unit test keeps the two in step).
 */

/** user: the input is wrong; host: the machine lacks something; lab: a VM/command failed. */
export type Fault = 'user' | 'host' | 'lab' | 'klab';

export const EXIT_CODES: Record<Fault, number> = {
  klab: 1,
  user: 2,
  host: 3,
  lab: 4,
};

export const ERROR_CODES = {
  KLAB_SPEC_PARSE: 'user',
  KLAB_SPEC_INVALID: 'user',
  KLAB_USAGE: 'user',
  KLAB_NO_LAB: 'user',
  KLAB_VM_UNKNOWN: 'user',
  KLAB_VM_NOT_RUNNING: 'user',
  KLAB_NODE_REFUSED: 'user',
  KLAB_ABORTED: 'user',
  KLAB_INTERRUPTED: 'user',
  KLAB_SUBNET_COLLISION: 'user',
  KLAB_LAB_NAME_TAKEN: 'user',
  KLAB_NOT_ENOUGH_RESOURCES: 'user',
  KLAB_SNAPSHOT_MISSING: 'user',
  KLAB_LESSON_UNKNOWN: 'user',
  KLAB_TOOL_MISSING: 'host',
  KLAB_LIBVIRT_UNREACHABLE: 'host',
  KLAB_NEEDS_ROOT: 'host',
  KLAB_BOX_UNAVAILABLE: 'host',
  KLAB_BOX_BUILD_FAILED: 'host',
  KLAB_STACK_BUILD_FAILED: 'host',
  KLAB_CHECKSUM_MISMATCH: 'host',
  KLAB_ARTIFACT_UNAVAILABLE: 'host',
  KLAB_VAGRANT_FAILED: 'lab',
  KLAB_LIBVIRT_FAILED: 'lab',
  KLAB_SSH_FAILED: 'lab',
  KLAB_STEP_FAILED: 'lab',
  KLAB_TIMEOUT: 'lab',
  KLAB_CLOCK_SKEW: 'lab',
  KLAB_SNAPSHOT_FAILED: 'lab',
  KLAB_RESET_INCOMPLETE: 'lab',
  KLAB_LOCKED: 'lab',
  KLAB_CERTS_INVALID: 'lab',
  KLAB_VERIFY_FAILED: 'lab',
  KLAB_ETCD_UNHEALTHY: 'lab',
  KLAB_ETCD_BACKUP_FAILED: 'lab',
  KLAB_ETCD_RESTORE_FAILED: 'lab',
  KLAB_LESSON_CHECK_FAILED: 'lab',
  KLAB_LESSON_INVALID: 'klab',
  KLAB_INTERNAL: 'klab',
} as const satisfies Record<string, Fault>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface KlabErrorOptions {
  /** What the user should do about it, in one or two sentences. */
  hint?: string;
  /** The VM the failure happened on, if any. */
  vm?: string;
  /** The command that failed, as argv. */
  command?: readonly string[];
  /** The last lines of the failing command's output. */
  outputTail?: string;
  /** Several findings reported at once (e.g. every problem in klab.yaml). */
  details?: readonly string[];
  cause?: unknown;
  /** What --json prints with the error (the check results of a failed verify, ...). */
  data?: Record<string, unknown>;
}

export class KlabError extends Error {
  readonly code: ErrorCode;
  readonly fault: Fault;
  readonly hint: string | undefined;
  readonly vm: string | undefined;
  readonly command: readonly string[] | undefined;
  readonly outputTail: string | undefined;
  readonly details: readonly string[];
  readonly data: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: KlabErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KlabError';
    this.code = code;
    this.fault = ERROR_CODES[code];
    this.hint = options.hint;
    this.vm = options.vm;
    this.command = options.command;
    this.outputTail = options.outputTail;
    this.details = options.details ?? [];
    this.data = options.data;
  }

  get exitCode(): number {
    // 128 + SIGINT, as shells report a run stopped with Ctrl-C.
    if (this.code === 'KLAB_INTERRUPTED') return 130;
    return EXIT_CODES[this.fault];
  }
}

export function isKlabError(error: unknown): error is KlabError {
  return error instanceof KlabError;
}

/** The last `lines` non-empty lines of some command output. */
export function tail(output: string, lines = 15): string {
  return output
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.length > 0)
    .slice(-lines)
    .join('\n');
}
