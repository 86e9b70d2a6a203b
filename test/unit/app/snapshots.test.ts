import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../../src/app/lab.js';
import { HostPool } from '../../../src/app/session.js';
import {
  checkpointHook,
  REVERT_RETRY_PAUSE_MS,
  resetOpenLab,
  revertEvery,
  saveSnapshot,
  setClocksByAgent,
  stepsToWaitFor,
  waitStepsHealthy,
} from '../../../src/app/snapshots.js';
import type { KlabError } from '../../../src/model/errors.js';
import { type KlabEvent, nullSink } from '../../../src/model/events.js';
import { labPaths } from '../../../src/model/lab-paths.js';
import { emptyState } from '../../../src/model/state.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { FakeMachines, FakeVirt } from '../../helpers/fake-ports.js';
import { twoVmSpec } from '../../helpers/specs.js';

async function fakeLab(): Promise<{ lab: Lab; libvirt: FakeVirt }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-snapops-'));
  await writeFile(path.join(dir, 'Vagrantfile'), '# fake\n');
  await mkdir(path.join(dir, '.klab'), { recursive: true });
  const spec = twoVmSpec();
  const libvirt = new FakeVirt(spec.vms.map((vm) => `klab-${spec.name}_${vm.name}`));
  const lab: Lab = {
    paths: labPaths(dir),
    spec,
    state: emptyState(),
    vagrant: new FakeMachines(),
    libvirt,
    sink: nullSink,
  };
  return { lab, libvirt };
}

describe('snapshot save is all or nothing', () => {
  it('pauses every VM, snapshots every VM, then resumes every VM', async () => {
    const { lab, libvirt } = await fakeLab();
    await saveSnapshot(lab, 'before-etcd');
    expect(libvirt.calls).toEqual([
      'suspend klab-duo_master',
      'suspend klab-duo_node1',
      'snapshot klab-duo_master before-etcd',
      'snapshot klab-duo_node1 before-etcd',
      'resume klab-duo_master',
      'resume klab-duo_node1',
    ]);
  });

  it('saves every VM at once, after every VM is paused', async () => {
    const { lab, libvirt } = await fakeLab();
    const save = libvirt.createSnapshot.bind(libvirt);
    let inFlight = 0;
    let most = 0;
    const pausedAtSave: string[][] = [];
    libvirt.createSnapshot = async (domain: string, name: string) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      pausedAtSave.push([...libvirt.states.values()]);
      await new Promise((resolve) => setTimeout(resolve, 20));
      inFlight -= 1;
      return save(domain, name);
    };
    await saveSnapshot(lab, 'before-etcd');
    expect(most).toBe(2);
    expect(pausedAtSave).toEqual([
      ['paused', 'paused'],
      ['paused', 'paused'],
    ]);
    expect([...libvirt.states.values()]).toEqual(['running', 'running']);
  });

  it('when one VM fails (disk full), the VMs already saved are rolled back and every VM runs again', async () => {
    const { lab, libvirt } = await fakeLab();
    libvirt.failCreateOn = 'klab-duo_node1';
    const error = (await saveSnapshot(lab, 'before-etcd').catch((e: unknown) => e)) as KlabError;
    expect(error.code).toBe('KLAB_SNAPSHOT_FAILED');
    expect(error.exitCode).toBe(4);
    expect(error.message).toBe(
      'snapshot "before-etcd" failed on node1; the 1 VM(s) already saved were rolled back, so no VM has it, and every VM runs again',
    );
    expect(error.outputTail).toBe('error: No space left on device');
    expect(libvirt.calls).toContain('delete klab-duo_master before-etcd');
    expect([...libvirt.states.values()]).toEqual(['running', 'running']);
    expect([...libvirt.snaps.values()].every((set) => set.size === 0)).toBe(true);
  });
});

describe('reset is all or nothing', () => {
  it('reverts nothing when one VM lacks its part of the snapshot, or its disk lost it', async () => {
    const { lab, libvirt } = await fakeLab();
    libvirt.snaps.get('klab-duo_master')?.add('base');
    const missing = (await resetOpenLab(lab, 'base').catch((e: unknown) => e)) as KlabError;
    expect(missing.code).toBe('KLAB_SNAPSHOT_MISSING');
    expect(missing.message).toMatch(/^snapshot "base" exists on master but /);

    libvirt.snaps.get('klab-duo_node1')?.add('base');
    libvirt.damaged.add('klab-duo_node1/base');
    const damaged = (await resetOpenLab(lab, 'base').catch((e: unknown) => e)) as KlabError;
    expect(damaged.message).toBe(
      'snapshot "base" cannot be restored on node1; nothing was reverted',
    );
    expect(damaged.details).toEqual([
      'node1: libvirt knows it, but the disk image holds no such snapshot',
    ]);
    expect(libvirt.calls.filter((call) => call.startsWith('revert'))).toEqual([]);
    expect([...libvirt.states.values()]).toEqual(['running', 'running']);
  });

  it('reverts every VM, then resumes them together', async () => {
    const { lab, libvirt } = await fakeLab();
    for (const set of libvirt.snaps.values()) set.add('base');
    // The snapshot held halted VMs: no clocks or health to check (no SSH in this test).
    libvirt.revertKeepsShutOff = true;
    const result = await resetOpenLab(lab, 'base');
    expect(result.snapshot).toBe('base');
    expect(libvirt.calls).toEqual(['revert klab-duo_master base', 'revert klab-duo_node1 base']);
  });

  it('tries a failed revert once more, after a pause, then goes on', async () => {
    const { lab, libvirt } = await fakeLab();
    libvirt.failRevert.set('klab-duo_node1', 1);
    const pauses: number[] = [];
    const clock = { now: () => 0, sleep: async (ms: number) => void pauses.push(ms) };
    await revertEvery(
      lab,
      [
        { vm: 'master', domain: 'klab-duo_master' },
        { vm: 'node1', domain: 'klab-duo_node1' },
      ],
      'base',
      clock,
    );
    expect(libvirt.calls.filter((call) => call === 'revert klab-duo_node1 base')).toHaveLength(2);
    expect(pauses).toEqual([REVERT_RETRY_PAUSE_MS]);
    expect([...libvirt.states.values()]).toEqual(['paused', 'paused']);
  });

  it('when a VM will not go back, resumes none: the ones back wait paused, and a rerun finishes it', async () => {
    const { lab, libvirt } = await fakeLab();
    for (const set of libvirt.snaps.values()) set.add('base');
    libvirt.failRevert.set('klab-duo_node1', 2);
    const error = (await resetOpenLab(lab, 'base').catch((e: unknown) => e)) as KlabError;
    expect(error.code).toBe('KLAB_RESET_INCOMPLETE');
    expect(error.exitCode).toBe(4);
    expect(error.message).toBe(
      'reset to "base" failed on node1; master reverted and left paused (not resumed), so no VM runs out of step with the others',
    );
    expect(error.outputTail).toBe(
      'error: Timed out during operation: cannot acquire state change lock',
    );
    expect(error.hint).toMatch(/^Run "klab reset base" again/);
    expect(libvirt.calls.filter((call) => call.startsWith('resume'))).toEqual([]);
    expect(libvirt.states.get('klab-duo_master')).toBe('paused');

    // Run again: every VM goes back, and all of them are resumed together.
    libvirt.revertKeepsShutOff = true;
    await resetOpenLab(lab, 'base');
    expect(libvirt.calls.slice(-2)).toEqual([
      'revert klab-duo_master base',
      'revert klab-duo_node1 base',
    ]);
  });

  it('without a name, goes back to the newest snapshot', async () => {
    const { lab, libvirt } = await fakeLab();
    for (const [domain, set] of libvirt.snaps) {
      set.add('after-kubelet').add('base').add('after-etcd');
      libvirt.createdAt.set(`${domain}/after-etcd`, 100);
      libvirt.createdAt.set(`${domain}/after-kubelet`, 200);
      libvirt.createdAt.set(`${domain}/base`, 300);
    }
    libvirt.revertKeepsShutOff = true;
    const result = await resetOpenLab(lab, undefined);
    expect(result.snapshot).toBe('base');
    expect(libvirt.calls).toEqual(['revert klab-duo_master base', 'revert klab-duo_node1 base']);
  });
});

describe('after a revert, the clocks are set through the guest agents beside the SSH connections', () => {
  it('names the VMs whose agent set the clock; one without an answer is left to SSH', async () => {
    const { lab, libvirt } = await fakeLab();
    const asked: string[] = [];
    libvirt.setGuestTimeNow = async (domain: string) => {
      asked.push(domain);
      if (domain.endsWith('node1')) throw new Error('guest agent is not connected');
      return true;
    };
    expect([...(await setClocksByAgent(lab))]).toEqual(['master']);
    expect(asked.sort()).toEqual(['klab-duo_master', 'klab-duo_node1']);
  });
});

describe('a snapshot of running VMs zeroes their free memory first', () => {
  it('asks every running guest to zero its free memory before any VM is paused', async () => {
    const { lab, libvirt } = await fakeLab();
    const order: string[] = [];
    const pool = new HostPool();
    for (const vm of lab.spec.vms) {
      pool.add(
        new FakeHost(vm.name, (argv) => {
          if (argv[0] === 'sh' && String(argv[2]).includes('drop_caches')) {
            order.push(`zero ${vm.name} (${libvirt.calls.length} libvirt calls before)`);
            return { stdout: 'filled=1200 free=140\n' };
          }
          if (argv[0] === 'date') return { stdout: `${(Date.now() / 1000).toFixed(3)}\n` };
          return undefined;
        }),
      );
    }
    await saveSnapshot(lab, 'before-etcd', { pool });
    expect(order).toEqual([
      'zero master (0 libvirt calls before)',
      'zero node1 (0 libvirt calls before)',
    ]);
    expect(libvirt.calls.slice(0, 2)).toEqual([
      'suspend klab-duo_master',
      'suspend klab-duo_node1',
    ]);
  });
});

describe('an automatic checkpoint that cannot be saved does not cost the lab', () => {
  it('warns, goes on, and from then on keeps only the checkpoint after the last step', async () => {
    const { lab, libvirt } = await fakeLab();
    const events: { code: string }[] = [];
    lab.sink = { emit: (event) => events.push(event) };
    libvirt.failCreateOn = 'klab-duo_node1';
    const hook = checkpointHook(lab, undefined, { mode: 'every-step', lastStep: 'kubelet' });
    await hook('etcd', true);
    expect(events.map((e) => e.code)).toContain('FALLBACK_CHECKPOINTS');
    libvirt.failCreateOn = undefined;
    await hook('flannel', true);
    await hook('kubelet', true);
    const taken = [...(libvirt.snaps.get('klab-duo_master') ?? [])];
    expect(taken).toEqual(['after-kubelet']);
  });
});

describe('a checkpoint after a step holds the lab just after that step', () => {
  it('is taken when missing, but never once a later step is done (it would hold more)', async () => {
    const { lab, libvirt } = await fakeLab();
    const hook = checkpointHook(lab, undefined, { mode: 'every-step', lastStep: 'kubelet' });
    const done = (step: string) => {
      for (const vm of lab.spec.vms) {
        lab.state.steps[vm.name] = { ...lab.state.steps[vm.name], [step]: '2026-11-30T00:00:00Z' };
      }
    };
    done('certs');
    done('etcd');
    await hook('etcd', false);
    // A lesson did flannel, then "klab create --until kube-proxy" resumed at etcd, unchanged.
    done('flannel');
    await hook('certs', false);
    await hook('flannel', false);
    expect([...(libvirt.snaps.get('klab-duo_master') ?? [])]).toEqual([
      'after-etcd',
      'after-flannel',
    ]);
  });
});

describe('after a revert, klab waits only for the parts whose health can change', () => {
  it('the running parts and the default route, in order; files, programs and images are as saved', () => {
    const spec = twoVmSpec();
    expect(stepsToWaitFor(spec, true).map((step) => step.id)).toEqual([
      'default-route',
      'etcd',
      'flannel',
      'docker',
      'control-plane',
      'kube-proxy',
      'kubelet',
    ]);
    // After a restart (klab up), every step is looked at: a boot re-reads every file.
    expect(stepsToWaitFor(spec, false).length).toBe(15);
  });
});

describe('the health wait after a reset reports each step, with its time', () => {
  function step(id: string, verdict: (vm: string) => Promise<void>) {
    return { id, verify: (_ctx: unknown, vm: { name: string }) => verdict(vm.name) };
  }

  it('one STEP_HEALTHY per step done somewhere; a failing step ends the wait with its VMs named', async () => {
    const { lab } = await fakeLab();
    const events: KlabEvent[] = [];
    lab.sink = { emit: (event) => events.push(event) };
    for (const vm of lab.spec.vms) lab.state.steps[vm.name] = { etcd: 'x', kubelet: 'x' };
    lab.state.steps.master = { etcd: 'x' };
    const asked: string[] = [];
    const steps = [
      step('etcd', async (vm) => void asked.push(`etcd ${vm}`)),
      step('flannel', async (vm) => void asked.push(`flannel ${vm}`)),
      step('kubelet', async (vm) => {
        asked.push(`kubelet ${vm}`);
        throw new Error(`${vm} is not Ready`);
      }),
      step('kube-proxy', async (vm) => void asked.push(`kube-proxy ${vm}`)),
    ];
    const ctx = {} as Parameters<typeof waitStepsHealthy>[2];
    const failures = await waitStepsHealthy(lab, steps, ctx, true);
    // flannel is done nowhere: not waited for; kube-proxy comes after the first failure.
    expect(asked.sort()).toEqual(['etcd master', 'etcd node1', 'kubelet node1']);
    expect(failures.map((f) => `${f.step} ${f.vm}`)).toEqual(['kubelet node1']);
    const ends = events.filter(
      (e): e is Extract<KlabEvent, { kind: 'task-end' }> => e.kind === 'task-end',
    );
    expect(ends.map((e) => [e.code, e.subject])).toEqual([
      ['STEP_HEALTHY', 'etcd'],
      ['TASK_FAILED', 'kubelet'],
    ]);
    expect(ends.every((e) => typeof e.ms === 'number')).toBe(true);
  });

  it("with resultOnly, a step's settle is waited for instead of its verify (where it has one)", async () => {
    const { lab } = await fakeLab();
    for (const vm of lab.spec.vms) lab.state.steps[vm.name] = { etcd: 'x', route: 'x' };
    const asked: string[] = [];
    const steps = [
      {
        id: 'etcd',
        verify: async () => {
          throw new Error('/etc/systemd/system/etcd.service differs');
        },
        settle: async (_ctx: unknown, vm: { name: string }) => void asked.push(`settle ${vm.name}`),
      },
      step('route', async (vm) => void asked.push(`verify ${vm}`)),
    ];
    const ctx = {} as Parameters<typeof waitStepsHealthy>[2];
    expect(await waitStepsHealthy(lab, steps, ctx, true, true)).toEqual([]);
    expect(asked.sort()).toEqual([
      'settle master',
      'settle node1',
      'verify master',
      'verify node1',
    ]);
    const failures = await waitStepsHealthy(lab, steps, ctx, true);
    expect(failures.map((f) => `${f.step} ${f.vm}`)).toEqual(['etcd master', 'etcd node1']);
  });

  it('without stopAtFirst, goes on past a failure and returns every one', async () => {
    const { lab } = await fakeLab();
    for (const vm of lab.spec.vms) lab.state.steps[vm.name] = { a: 'x', b: 'x' };
    const fail = async (vm: string) => {
      throw new Error(vm);
    };
    const ctx = {} as Parameters<typeof waitStepsHealthy>[2];
    const failures = await waitStepsHealthy(lab, [step('a', fail), step('b', fail)], ctx, false);
    expect(failures.map((f) => `${f.step} ${f.vm}`)).toEqual([
      'a master',
      'a node1',
      'b master',
      'b node1',
    ]);
  });
});
