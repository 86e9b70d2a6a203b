/** What klab remembers about a lab between runs (.klab/state.json). */
import { readJson, writeJson } from './cache-paths.js';
import { STACKS, type StackName } from './spec.js';

export interface LabState {
  version: 1;
  createdAt?: string;
  /** The box and stack actually in use (after any fallback). */
  box?: string;
  stack?: StackName;
  accelerator?: 'kvm' | 'tcg';
  /** Why klab chose something other than what the spec asked for. */
  fallbacks?: string[];
  /** Decided at the first create from the free disk space (see checkpointMode). */
  checkpoints?: 'every-step' | 'last-step' | 'none';
  /** VM -> step id -> when it was last completed and verified. */
  steps: Record<string, Record<string, string>>;
}

export function emptyState(): LabState {
  return { version: 1, steps: {} };
}

export async function loadState(file: string): Promise<LabState> {
  const state = await readJson<LabState>(file);
  if (state?.version !== 1) return emptyState();
  // A stack klab does not know (a hand-edited file): forget it, the spec decides again.
  const known = (STACKS as readonly string[]).includes(state.stack ?? '');
  const { stack: _dropped, ...rest } = state;
  return { ...emptyState(), ...(known ? state : rest) };
}

export async function saveState(file: string, state: LabState): Promise<void> {
  await writeJson(file, state);
}

export function markStepDone(state: LabState, vm: string, stepId: string, when: Date): void {
  state.steps[vm] ??= {};
  const vmSteps = state.steps[vm];
  if (vmSteps) vmSteps[stepId] = when.toISOString();
}
