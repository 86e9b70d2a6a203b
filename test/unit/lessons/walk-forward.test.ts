/**
 * Walking forward: `klab create --until STEP` stops after a step, and
 * `klab lesson start ID --here` starts a lesson on the lab as it is (no reset) only
 * when the lab is exactly where the lesson starts.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { provisioningSteps } from '../../../provision/index.js';
import { recordStepDone, startLesson } from '../../../src/app/lessons.js';
import { doneEverywhere, stepsThrough } from '../../../src/app/pipeline.js';
import { findLesson, loadLessons } from '../../../src/lessons/catalog.js';
import { KlabError } from '../../../src/model/errors.js';
import { nullSink } from '../../../src/model/events.js';
import { loadSpec } from '../../../src/model/spec-file.js';
import type { LabState } from '../../../src/model/state.js';

const SPEC = `name: walk
nodes:
  - name: master
    role: master
  - name: node1
`;

describe('stepsThrough (klab create --until)', () => {
  const steps = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
  it('keeps the steps up to and including the one named, or all of them', () => {
    expect(stepsThrough(steps, 'b').map((step) => step.id)).toEqual(['a', 'b']);
    expect(stepsThrough(steps, 'c')).toHaveLength(3);
    expect(stepsThrough(steps)).toHaveLength(3);
  });
  it('refuses a name that is not a step, listing the real ones in order', () => {
    const error = (() => {
      try {
        return stepsThrough(steps, 'kube-prxy');
      } catch (caught) {
        return caught;
      }
    })() as KlabError;
    expect(error).toBeInstanceOf(KlabError);
    expect(error.code).toBe('KLAB_USAGE');
    expect(error.message).toContain('kube-prxy');
    expect(error.hint).toContain('a, b, c');
  });
});

describe('klab lesson start --here', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'klab-walk-'));
    await writeFile(path.join(dir, 'klab.yaml'), SPEC);
    await writeFile(path.join(dir, 'Vagrantfile'), '# rendered\n');
    await mkdir(path.join(dir, '.klab'), { recursive: true });
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const request = () => ({ dir, sink: nullSink });

  /** A state.json with every step through `last` done on each VM it runs on. */
  async function doneThrough(last: string): Promise<LabState> {
    const spec = await loadSpec(dir, {});
    const state: LabState = { version: 1, steps: {} };
    for (const step of stepsThrough(provisioningSteps(spec), last)) {
      for (const vm of step.targets ? step.targets(spec) : spec.vms) {
        state.steps[vm.name] ??= {};
        (state.steps[vm.name] as Record<string, string>)[step.id] = '2026-11-30T00:00:00.000Z';
      }
    }
    await writeFile(path.join(dir, '.klab', 'state.json'), JSON.stringify(state));
    return state;
  }

  async function refusal(id: string): Promise<KlabError> {
    const error = await startLesson(request(), id, { here: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KlabError);
    expect((error as KlabError).code).toBe('KLAB_USAGE');
    expect((error as KlabError).hint).toContain(`klab lesson start ${id}"`);
    return error as KlabError;
  }

  it('starts a tutorial lesson without a reset when the lab is just before its step', async () => {
    await doneThrough('certs');
    // No VM, no libvirt here: a reset would fail, so passing shows none was tried.
    const started = await startLesson(request(), 'etcd', { here: true });
    expect(started.here).toBe(true);
    const progress = JSON.parse(await readFile(path.join(dir, '.klab', 'lessons.json'), 'utf8'));
    expect(progress.current).toBe('etcd');
  });

  it('refuses when a step before the lesson is missing, or the lab is past it', async () => {
    await doneThrough('certs');
    expect((await refusal('flannel')).message).toMatch(/"etcd" is not done on every VM yet/);
    await doneThrough('flannel');
    expect((await refusal('flannel')).message).toMatch(/past its start: "flannel" is done/);
  });

  it('counts a step done on only some of its VMs as not done', async () => {
    const state = await doneThrough('etcd');
    const spec = await loadSpec(dir, {});
    const certs = provisioningSteps(spec).find((step) => step.id === 'certs');
    if (!certs) throw new Error('no certs step');
    delete state.steps.node1?.certs;
    expect(doneEverywhere(certs, spec, state)).toBe(false);
    await writeFile(path.join(dir, '.klab', 'state.json'), JSON.stringify(state));
    expect((await refusal('flannel')).message).toMatch(/"certs" is not done/);
  });

  it('does not start a lesson on top of the current one before its check passed', async () => {
    await doneThrough('certs');
    await startLesson(request(), 'etcd', { here: true });
    // The learner did the etcd step (state says so) but its check never passed.
    await doneThrough('etcd');
    expect((await refusal('flannel')).message).toMatch(/current lesson "etcd" is not done yet/);
    const file = path.join(dir, '.klab', 'lessons.json');
    const progress = JSON.parse(await readFile(file, 'utf8'));
    progress.lessons.etcd.passedAt = '2026-11-30T00:10:00.000Z';
    await writeFile(file, JSON.stringify(progress));
    expect((await startLesson(request(), 'flannel', { here: true })).here).toBe(true);
  });
});

describe('a tutorial step done by hand', () => {
  it('is recorded once its lesson check passes, so the next lesson can start --here', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-walk-hand-'));
    try {
      await writeFile(path.join(dir, 'klab.yaml'), SPEC);
      const spec = await loadSpec(dir, {});
      const steps = provisioningSteps(spec);
      const lessons = await loadLessons(spec);
      const state: LabState = { version: 1, steps: {} };
      const lab = { spec, state };
      const when = new Date('2026-11-30T01:00:00Z');
      // flannel runs on every VM: both get it.
      expect(recordStepDone(findLesson(lessons, 'flannel'), steps, lab, when)).toBe(true);
      expect(state.steps.master?.flannel).toBe(when.toISOString());
      expect(state.steps.node1?.flannel).toBe(when.toISOString());
      // Already recorded: nothing changes, the first time stays.
      const later = new Date('2026-11-30T02:00:00Z');
      expect(recordStepDone(findLesson(lessons, 'flannel'), steps, lab, later)).toBe(false);
      expect(state.steps.master?.flannel).toBe(when.toISOString());
      // A break/fix lesson's check is a fault, not a step: nothing is recorded.
      expect(recordStepDone(findLesson(lessons, 'swap-on'), steps, lab, when)).toBe(false);
      expect(Object.keys(state.steps.node1 ?? {})).toEqual(['flannel']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
