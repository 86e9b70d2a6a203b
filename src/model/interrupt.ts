/**
 * Ctrl-C (SIGINT) and SIGTERM: klab stops at the next safe point instead of in the middle
 * of an action. Safe points are between provisioning steps and between the polls of a
 * wait; snapshot save and reset finish their pause-snapshot-resume or revert-resume first,
 * so no VM is left paused and no snapshot half-taken. Child processes run in their own
 * process group (src/adapters/process.ts), so the terminal's Ctrl-C does not cut a virsh
 * or vagrant call in half; klab decides when to stop.
 */
import { KlabError } from './errors.js';

export interface Interrupt {
  /** The signal that asked klab to stop, if any. */
  readonly requested: string | undefined;
  request(signal: string): void;
  /** Throws KLAB_INTERRUPTED at a safe point once a stop was requested. */
  throwIfRequested(resume: string): void;
  /** Resolves with the signal once a stop is requested (long-running servers: klab ui). */
  whenRequested(): Promise<string>;
  reset(): void;
}

class ProcessInterrupt implements Interrupt {
  requested: string | undefined;
  private waiters: ((signal: string) => void)[] = [];

  request(signal: string): void {
    this.requested ??= signal;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake(this.requested);
  }

  whenRequested(): Promise<string> {
    const requested = this.requested;
    if (requested) return Promise.resolve(requested);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  throwIfRequested(resume: string): void {
    if (!this.requested) return;
    throw new KlabError('KLAB_INTERRUPTED', `stopped on ${this.requested}, at a safe point`, {
      hint: resume,
    });
  }

  reset(): void {
    this.requested = undefined;
  }
}

/** One per process: signals arrive per process. */
export const interrupt: Interrupt = new ProcessInterrupt();
