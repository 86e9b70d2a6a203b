/** A step whose part runs but is slow gets one bounded, named extension; a broken one does not. */
import { describe, expect, it } from 'vitest';
import { apiserverStillStarting } from '../../../provision/control-plane/index.js';
import { nodeJoinedButSlow } from '../../../provision/kubelet/index.js';
import { probeStep } from '../../../provision/lib/cluster.js';
import { KlabError } from '../../../src/model/errors.js';
import type { KlabEvent } from '../../../src/model/events.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const STARTING =
  'kube-apiserver /healthz: Error from server (InternalError): an error on the server ("[+]ping ok\\n[+]log ok\\n[+]etcd ok\\n[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\\nhealthz check failed")';

/** A clock that moves only when someone sleeps, and a step whose problems last `polls` polls. */
function slowStep(polls: number, problem: string, alive?: (p: readonly string[]) => boolean) {
  let now = 0;
  let calls = 0;
  const events: KlabEvent[] = [];
  const spec = { ...twoVmSpec(), timeouts: { ...twoVmSpec().timeouts, health: 60 } };
  const ctx = testStepContext(
    spec,
    { master: new FakeHost('master') },
    {
      clock: {
        now: () => now,
        sleep: async (ms) => {
          now += ms;
        },
      },
      sink: { emit: (event) => events.push(event) },
    },
  );
  const step = probeStep({
    id: 'control-plane',
    title: 'test',
    problems: async () => (++calls > polls ? [] : [problem]),
    apply: async () => {},
    waits: true,
    hint: () => 'look at the journal',
    ...(alive ? { alive } : {}),
  });
  const vm = spec.vms[0];
  if (!vm) throw new Error('no VM');
  return { verify: () => step.verify(ctx, vm), events, elapsed: () => now };
}

describe('slow, not broken', () => {
  it('an apiserver still running its post-start hooks is alive; one without etcd, or stopped, is not', () => {
    expect(apiserverStillStarting([STARTING])).toBe(true);
    expect(apiserverStillStarting([STARTING.replace('[+]etcd ok', '[-]etcd failed')])).toBe(false);
    expect(apiserverStillStarting(['kube-apiserver is not running'])).toBe(false);
    expect(apiserverStillStarting(['kube-apiserver /healthz: no answer'])).toBe(false);
    expect(apiserverStillStarting([])).toBe(false);
  });

  it('a joined node whose status reports do not get through is alive; one that never joined is not', () => {
    const quiet = 'node node2 is not Ready: Kubelet stopped posting node status.';
    expect(nodeJoinedButSlow([quiet])).toBe(true);
    expect(
      nodeJoinedButSlow([
        'node node2 is not Ready: PLEG is not healthy: pleg was last seen active 3m0s ago',
      ]),
    ).toBe(true);
    expect(nodeJoinedButSlow([quiet, 'kubelet is not running'])).toBe(false);
    expect(nodeJoinedButSlow(['no client certificate from TLS bootstrap yet'])).toBe(false);
    expect(nodeJoinedButSlow(['node node2 is not registered'])).toBe(false);
    expect(
      nodeJoinedButSlow([
        'node node2 is not Ready: runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:docker: network plugin is not ready: cni config uninitialized',
      ]),
    ).toBe(false);
    expect(nodeJoinedButSlow([])).toBe(false);
  });

  it('past timeouts.health, a slow but alive part gets twice as long again, said with STEP_SLOW', async () => {
    // 60 s of health timeout, polls 3 s apart growing to 10 s: still starting at ~94 s (the
    // 12th poll), healthy after.
    const run = slowStep(12, STARTING, apiserverStillStarting);
    await run.verify();
    expect(run.elapsed()).toBeGreaterThan(60_000);
    const slow = run.events.filter((event) => event.code === 'STEP_SLOW');
    expect(slow).toHaveLength(1);
    expect(slow[0]).toMatchObject({ kind: 'notice', level: 'warn' });
    expect((slow[0] as { text: string }).text).toContain('slow, not broken');
  });

  it('the extension is bounded: still not done after it, the step times out naming the wait', async () => {
    const run = slowStep(1000, STARTING, apiserverStillStarting);
    const error = await run.verify().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KlabError);
    expect((error as KlabError).code).toBe('KLAB_TIMEOUT');
    expect((error as KlabError).message).toContain('control-plane on master (slow: still');
    expect(run.elapsed()).toBeLessThanOrEqual(3 * 60_000 + 3_000);
  });

  it('a part that is not alive gets no extension', async () => {
    const run = slowStep(1000, 'kube-apiserver is not running', apiserverStillStarting);
    const error = await run.verify().catch((e: unknown) => e);
    expect((error as KlabError).code).toBe('KLAB_TIMEOUT');
    expect(run.elapsed()).toBeLessThanOrEqual(60_000 + 3_000);
    expect(run.events.some((event) => event.code === 'STEP_SLOW')).toBe(false);
  });
});
