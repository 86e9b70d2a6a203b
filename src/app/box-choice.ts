/**
 * Which box a lab boots, and the fallback: the box the lab already uses, the spec's if
 * Vagrant has it, a local build for klab/* boxes, a download otherwise; when that fails and
 * the user did not insist, the locally built Debian box plus the mirror-only stack.
 */
import { existsSync } from 'node:fs';
import { KlabError, tail } from '../model/errors.js';
import { task } from '../model/events.js';
import type { StackName } from '../model/spec.js';
import { type BoxDeps, ensureLocalBox, FALLBACK_BOX, FALLBACK_STACK, localRecipe } from './box.js';
import { boxDeps } from './box-deps.js';
import type { Lab } from './lab.js';

const BOX_DOWNLOAD_TIMEOUT_MS = 10 * 60_000;

/**
 * The box to boot: the one the lab already uses, the spec's if Vagrant has it, a local
 * build for klab/* boxes, a download otherwise; and when that fails and the user did not
 * insist on the box, the locally built Debian box plus the mirror-only stack.
 */
export async function resolveBox(
  lab: Lab,
  deps: BoxDeps = boxDeps(lab.sink, lab.vagrant),
): Promise<{ box: string; stack: StackName }> {
  const { spec, state, sink, vagrant } = lab;
  if (state.box && existsSync(lab.paths.vagrantfile) && !spec.insisted.box) {
    return { box: state.box, stack: state.stack ?? spec.stack };
  }
  const installed = await deps.installedBoxes();
  const recipe = localRecipe(spec.box);
  if (installed.includes(spec.box) && !recipe) return { box: spec.box, stack: spec.stack };
  if (recipe) {
    await ensureLocalBox(recipe, deps);
    return { box: spec.box, stack: spec.stack };
  }
  // The task fails visibly (FAIL line) when the download does; the fallback follows.
  const added = await task(sink, `Download box ${spec.box}`, async () => {
    const result = await vagrant.boxAdd(spec.box, spec.box, BOX_DOWNLOAD_TIMEOUT_MS);
    if (result.exitCode !== 0 || result.timedOut) throw result;
    return result;
  }).catch((error: unknown) =>
    error && typeof error === 'object' && 'exitCode' in error
      ? (error as { exitCode: number; stdout: string; stderr: string; timedOut: boolean })
      : { exitCode: 1, stdout: '', stderr: String(error), timedOut: false },
  );
  if (added.exitCode === 0 && !added.timedOut) return { box: spec.box, stack: spec.stack };

  const why = tail(`${added.stdout}\n${added.stderr}`, 3) || 'no answer';
  if (spec.insisted.box) {
    throw new KlabError('KLAB_BOX_UNAVAILABLE', `the box ${spec.box} cannot be downloaded`, {
      outputTail: why,
      hint: `Build one locally instead: "sudo klab box build" and set "box: ${FALLBACK_BOX}" in klab.yaml.`,
    });
  }
  const stack = spec.insisted.stack ? spec.stack : FALLBACK_STACK;
  const message =
    `The default box ${spec.box} cannot be downloaded from this host, so klab falls back to ` +
    `a locally built ${FALLBACK_BOX} box` +
    (stack === FALLBACK_STACK && spec.stack !== FALLBACK_STACK
      ? ` and the mirror-only "${FALLBACK_STACK}" stack (Kubernetes 1.20 from Debian sources instead of ${spec.stack}).`
      : '.') +
    ' Set box/stack in klab.yaml to choose yourself.';
  sink.emit({ kind: 'notice', code: 'FALLBACK_BOX', level: 'warn', text: message });
  state.fallbacks = [...(state.fallbacks ?? []), message];
  const fallback = localRecipe(FALLBACK_BOX);
  if (!fallback) throw new KlabError('KLAB_INTERNAL', `no recipe for ${FALLBACK_BOX}`);
  await ensureLocalBox(fallback, deps);
  return { box: FALLBACK_BOX, stack };
}
