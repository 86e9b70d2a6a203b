import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os, { hostname } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { labUiBackend } from '../../../src/app/ui.js';
import { nullSink } from '../../../src/model/events.js';
import { FakeMachines, FakeVirt } from '../../helpers/fake-ports.js';

const SPEC = `name: duo
box: klab/debian-12
stack: debian
network:
  subnet: 10.77.0.0/24
  managementSubnet: 10.78.0.0/24
nodes:
  - { name: master, role: master, memory: 1024 }
  - { name: node1, memory: 1024 }
`;

async function labDir(created: boolean): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-ui-backend-'));
  await writeFile(path.join(dir, 'klab.yaml'), SPEC);
  if (created) {
    await writeFile(path.join(dir, 'Vagrantfile'), '# fake\n');
    await mkdir(path.join(dir, '.klab'), { recursive: true });
  }
  return dir;
}

function fakes(state = 'shut off') {
  const virt = new FakeVirt(['klab-duo_master', 'klab-duo_node1'], state);
  return { virt, ports: { machines: new FakeMachines(), virt } };
}

describe("klab ui's lab backend", () => {
  it('shows every VM with its roles, state and the ssh command, the steps and the checkpoints', async () => {
    const dir = await labDir(true);
    const { virt, ports } = fakes();
    virt.snaps.get('klab-duo_master')?.add('after-etcd');
    virt.snaps.get('klab-duo_node1')?.add('after-etcd');
    const overview = await labUiBackend({ dir, ports }).overview();
    expect(overview.vms.map((vm) => [vm.name, vm.roles, vm.state, vm.ssh])).toEqual([
      ['master', ['master', 'etcd'], 'shut off', 'klab ssh master'],
      ['node1', ['node'], 'shut off', 'klab ssh node1'],
    ]);
    // No VM runs: nobody to ask for components.
    expect(await labUiBackend({ dir, ports }).components()).toEqual({});
    expect(overview.steps.map((step) => step.id)).toContain('etcd');
    expect(overview.steps.find((step) => step.id === 'kubelet')?.vms).toEqual(['node1']);
    expect(overview.checkpoints.map((cp) => [cp.name, cp.afterStep])).toEqual([
      ['after-etcd', 'etcd'],
    ]);
    expect(overview.lockedBy).toBeUndefined();
  });

  it('a lab not created yet: VMs "not created", no checkpoints, and actions answer with the error, never throw', async () => {
    const dir = await labDir(false);
    const { ports } = fakes();
    const backend = labUiBackend({ dir, ports });
    const overview = await backend.overview();
    expect(overview.vms.map((vm) => vm.state)).toEqual(['not created', 'not created']);
    expect(overview.checkpoints).toEqual([]);
    const answer = await backend.run({ kind: 'lesson-check', id: 'etcd' }, nullSink);
    expect(answer.ok).toBe(false);
    expect(answer.code).toBe('KLAB_NO_LAB');
    expect(answer.hint).toMatch(/klab create/);
  });

  it("an action that changes the lab holds the lab's lock, and is refused while a command holds it", async () => {
    const dir = await labDir(true);
    const { virt, ports } = fakes();
    const backend = labUiBackend({ dir, ports });
    const lock = path.join(dir, '.klab', 'lock');
    // `klab create` (this test's parent process, alive) holds the lock.
    await writeFile(
      lock,
      JSON.stringify({
        pid: process.ppid,
        command: 'klab create',
        host: hostname(),
        startedAt: 'now',
      }),
    );
    expect((await backend.overview()).lockedBy).toBe(`klab create (PID ${process.ppid})`);
    const refused = await backend.run({ kind: 'snapshot-save', name: 'mine' }, nullSink);
    expect(refused).toMatchObject({ ok: false, code: 'KLAB_LOCKED' });
    expect(virt.calls).toEqual([]);
    // Reading actions do not need the lock (as `klab lesson hint` does not).
    const hint = await backend.run({ kind: 'lesson-hint', id: 'etcd' }, nullSink);
    expect(hint).toMatchObject({ ok: true, code: 'LESSON_HINT' });
    expect(hint.text?.en).toBeTruthy();
    expect(hint.text?.['zh-CN']).toBeTruthy();
    expect((await backend.lesson('etcd')).hints).toHaveLength(1);
  });
});
