/** What every command file exports: its yargs shape and one call into core. */
import type { Argv } from 'yargs';
import type { Reporter } from '../ui/reporter.js';

export interface CommandIo {
  reporter: Reporter;
  stdinIsTty: boolean;
  /** Ask a yes/no question on the terminal. */
  confirm(question: string): Promise<boolean>;
}

export interface GlobalArgs {
  dir: string;
  verbose: boolean;
  quiet: boolean;
  json: boolean;
}

export interface KlabCommand {
  command: string;
  describe: string;
  builder: (yargs: Argv) => Argv;
  /** Whether the run's log belongs in the lab directory (else in the user cache). */
  logsInLab: 'always' | 'if-lab' | 'never';
  /**
   * Whether this run changes the lab (VMs, snapshots, state, PKI): such runs hold the
   * lab's lock, one at a time. Reading runs never take it. 'new-lab': it may create the
   * lab directory too (create), so the lock is taken even where there is no lab yet.
   */
  writesLab?: (args: Record<string, unknown>) => false | 'lab' | 'new-lab';
  /** What the first Ctrl-C does, when it is not "stop at the next safe point". */
  onInterrupt?: string;
  run(args: Record<string, unknown> & GlobalArgs, io: CommandIo): Promise<number>;
}
