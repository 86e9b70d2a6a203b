import { describe, expect, it } from 'vitest';
import { waitFor } from '../../../provision/lib/guest.js';
import type { Step, StepContext } from '../../../provision/lib/step.js';
import { runSteps } from '../../../src/app/pipeline.js';
import type { KlabError } from '../../../src/model/errors.js';
import { nullSink, systemClock } from '../../../src/model/events.js';
import { interrupt } from '../../../src/model/interrupt.js';
import { emptyState } from '../../../src/model/state.js';
import { clusterTuning } from '../../../src/model/tuning.js';
import { installProfile } from '../../../src/stacks/install.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { twoVmSpec } from '../../helpers/specs.js';

const spec = twoVmSpec();
const ctx: StepContext = {
  spec,
  sink: nullSink,
  clock: systemClock,
  host: (vm) => new FakeHost(vm),
  provisionFile: async () => '',
  profile: installProfile('debian'),
  tuning: clusterTuning(spec, 'tcg'),
  pkiDir: '/nonexistent',
  artifactFile: () => '',
};

function fakeStep(id: string, done: boolean, log: string[]): Step {
  return {
    id,
    title: id,
    check: async () => done,
    apply: async (_ctx, vm) => {
      log.push(`apply ${id} ${vm.name}`);
    },
    verify: async () => {},
  };
}

describe('runSteps', () => {
  it('looks at a step found done once when its check is what verify would see, twice otherwise', async () => {
    const seen: string[] = [];
    const step = (id: string, checkVerifies: boolean): Step => ({
      id,
      title: id,
      checkVerifies,
      check: async (_ctx, vm) => {
        seen.push(`check ${id} ${vm.name}`);
        return true;
      },
      apply: async () => {},
      verify: async (_ctx, vm) => {
        seen.push(`verify ${id} ${vm.name}`);
      },
    });
    await runSteps([step('probe', true), step('custom', false)], ctx, emptyState());
    expect(seen.filter((line) => line.endsWith('master'))).toEqual([
      'check probe master',
      'check custom master',
      'verify custom master',
    ]);
  });

  it('applies what is not done, marks state, and retakes every checkpoint after a change', async () => {
    const log: string[] = [];
    const hooks: [string, boolean][] = [];
    const state = emptyState();
    const outcomes = await runSteps(
      [fakeStep('a', true, log), fakeStep('b', false, log), fakeStep('c', true, log)],
      ctx,
      state,
      { afterStep: async (step, changed) => void hooks.push([step.id, changed]) },
    );
    expect(log).toEqual(['apply b master', 'apply b node1']);
    // c had nothing to do, but its checkpoint still holds the old b: it is stale.
    expect(hooks).toEqual([
      ['a', false],
      ['b', true],
      ['c', true],
    ]);
    expect(outcomes.filter((o) => o.result === 'applied').map((o) => `${o.step}/${o.vm}`)).toEqual([
      'b/master',
      'b/node1',
    ]);
    expect(Object.keys(state.steps.node1 ?? {})).toEqual(['a', 'b', 'c']);
  });

  it('stops at the first failing step, on every VM, with its error', async () => {
    const failing: Step = {
      ...fakeStep('x', false, []),
      verify: async (_ctx, vm) => {
        if (vm.name === 'node1') throw new Error('node1 broke');
      },
    };
    const hooks: string[] = [];
    await expect(
      runSteps([failing, fakeStep('y', false, [])], ctx, emptyState(), {
        afterStep: async (step) => void hooks.push(step.id),
      }),
    ).rejects.toThrow('node1 broke');
    expect(hooks).toEqual([]);
  });
});

describe('a step that goes one VM at a time', () => {
  const traced = (log: string[], failOn?: string): Step => ({
    id: 'join',
    title: 'join',
    oneAtATime: (context) => context.tuning.accelerator === 'tcg',
    check: async () => false,
    apply: async (_ctx, vm) => {
      log.push(`apply ${vm.name}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    },
    verify: async (_ctx, vm) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      log.push(`verified ${vm.name}`);
      if (vm.name === failOn) throw new Error(`${vm.name} did not join`);
    },
  });

  it('verifies each VM before the next is applied, under TCG', async () => {
    const log: string[] = [];
    await runSteps([traced(log)], ctx, emptyState());
    expect(log).toEqual(['apply master', 'verified master', 'apply node1', 'verified node1']);
  });

  it('runs all VMs at once when the step says so (KVM)', async () => {
    const log: string[] = [];
    await runSteps([traced(log)], { ...ctx, tuning: clusterTuning(spec, 'kvm') }, emptyState());
    expect(log.slice(0, 2)).toEqual(['apply master', 'apply node1']);
  });

  it('does not start the next VM after one failed, and records nothing', async () => {
    const log: string[] = [];
    const state = emptyState();
    await expect(runSteps([traced(log, 'master')], ctx, state)).rejects.toThrow(
      'master did not join',
    );
    expect(log).toEqual(['apply master', 'verified master']);
    expect(state.steps.node1?.join).toBeUndefined();
  });
});

describe('Ctrl-C during provisioning', () => {
  it('finishes the step under way, records it, and stops before the next with exit 130 and how to resume', async () => {
    const log: string[] = [];
    const state = emptyState();
    const interrupting: Step = {
      ...fakeStep('first', false, log),
      apply: async (_ctx, vm) => {
        log.push(`apply first ${vm.name}`);
        interrupt.request('SIGINT');
      },
    };
    const hooks: string[] = [];
    try {
      const error = (await runSteps([interrupting, fakeStep('second', false, log)], ctx, state, {
        afterStep: async (step) => void hooks.push(step.id),
      }).catch((e: unknown) => e)) as KlabError;
      expect(error.code).toBe('KLAB_INTERRUPTED');
      expect(error.exitCode).toBe(130);
      expect(error.message).toBe('stopped on SIGINT, at a safe point');
      expect(error.hint).toBe(
        'Run "klab create" again to resume at "second"; the steps done so far are kept.',
      );
    } finally {
      interrupt.reset();
    }
    expect(log).toEqual(['apply first master', 'apply first node1']);
    // The finished step is recorded (and its checkpoint hook ran): a re-run skips it.
    expect(hooks).toEqual(['first']);
    expect(Object.keys(state.steps.master ?? {})).toEqual(['first']);
  });

  it('a wait stops between two polls', async () => {
    let polls = 0;
    try {
      const error = await waitFor(
        { clock: { now: () => 0, sleep: async () => {} } },
        { what: 'etcd healthy', vm: 'master', timeoutMs: 60_000, hint: '' },
        async () => {
          polls += 1;
          interrupt.request('SIGTERM');
          return 'not yet';
        },
      ).catch((e: unknown) => e);
      expect(error).toMatchObject({
        code: 'KLAB_INTERRUPTED',
        hint: 'Stopped while waiting for etcd healthy; run the command again to go on.',
      });
    } finally {
      interrupt.reset();
    }
    expect(polls).toBe(1);
  });
});
