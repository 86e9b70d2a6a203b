/** What a break/fix lesson (or a tutorial lesson's setup) does to the lab, and how it checks it. */
import type { StepContext } from '../../provision/lib/step.js';
import type { LabSpec } from '../model/spec.js';

export interface Fault {
  id: string;
  /** Why this lab cannot host the fault (too few etcd members, ...); undefined: it can. */
  unsupported?(spec: LabSpec): string | undefined;
  inject(ctx: StepContext): Promise<void>;
  /** What is still broken, each with what to look at (empty: repaired). */
  problems(ctx: StepContext): Promise<string[]>;
  /** The repair `klab lesson solve` runs. */
  repair(ctx: StepContext): Promise<void>;
}
