import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BoxDeps } from '../../../src/app/box.js';
import { boxBuildPaths, localRecipe } from '../../../src/app/box.js';
import { resolveBox } from '../../../src/app/box-choice.js';
import { openLab } from '../../../src/app/lab.js';
import { destroyLab } from '../../../src/app/lifecycle.js';
import { labStatus } from '../../../src/app/status.js';
import type { KlabError } from '../../../src/model/errors.js';
import type { KlabEvent } from '../../../src/model/events.js';
import { FakeMachines, FakeVirt } from '../../helpers/fake-ports.js';

const DUO = `name: duo
box: klab/debian-12
stack: debian
network: { subnet: 10.77.0.0/24, managementSubnet: 10.78.0.0/24 }
nodes:
  - { name: master, role: master, memory: 1024, cpus: 1 }
  - { name: node1, memory: 1024, cpus: 1 }
`;

async function labDir(yaml: string, created = true): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-life-'));
  await writeFile(path.join(dir, 'klab.yaml'), yaml);
  await mkdir(path.join(dir, '.klab'), { recursive: true });
  await writeFile(path.join(dir, '.klab', 'state.json'), '{"version":1,"steps":{}}\n');
  if (created) await writeFile(path.join(dir, 'Vagrantfile'), '# rendered by klab\n');
  return dir;
}

function sink() {
  const events: KlabEvent[] = [];
  return { events, emit: (event: KlabEvent) => events.push(event) };
}

describe('destroy leaves nothing of the lab behind, and nothing else is touched', () => {
  it('deletes snapshots first, lets Vagrant destroy, then removes leftovers', async () => {
    const dir = await labDir(DUO);
    const virt = new FakeVirt(['klab-duo_master', 'klab-duo_node1', 'other_vm']);
    virt.snaps.get('klab-duo_master')?.add('after-etcd');
    virt.snaps.get('klab-duo_node1')?.add('after-etcd');
    virt.nets.add('klab-duo').add('klab-duo-mgmt').add('default');
    virt.vols.add('klab-duo_node1.img').add('other.img');
    const machines = new FakeMachines();
    // vagrant destroy removes master but (an interrupted run) leaves node1 and its disk.
    machines.onDestroy = () => {
      virt.states.delete('klab-duo_master');
      virt.snaps.delete('klab-duo_master');
    };
    const removed = await destroyLab({ dir, sink: sink(), ports: { machines, virt } });

    expect(virt.calls.slice(0, 2)).toEqual([
      'delete klab-duo_master after-etcd',
      'delete klab-duo_node1 after-etcd',
    ]);
    expect(machines.calls).toEqual(['destroy']);
    expect(removed).toEqual([
      'domain klab-duo_node1',
      'volume klab-duo_node1.img',
      'network klab-duo',
      'network klab-duo-mgmt',
    ]);
    expect(await virt.domains()).toEqual(['other_vm']);
    expect(await virt.networks()).toEqual(['default']);
    expect(await virt.volumes()).toEqual(['other.img']);
    expect(existsSync(path.join(dir, '.klab', 'state.json'))).toBe(false);
    expect(existsSync(path.join(dir, 'klab.yaml'))).toBe(true);
  });

  it('a lab never created: Vagrant is not called, leftovers still go', async () => {
    const dir = await labDir(DUO, false);
    const virt = new FakeVirt(['klab-duo_master']);
    const machines = new FakeMachines();
    await destroyLab({ dir, sink: sink(), ports: { machines, virt } });
    expect(machines.calls).toEqual([]);
    expect(await virt.domains()).toEqual([]);
  });

  it('a directory with no lab in it (a mistyped --dir): says nothing was there, touches nothing', async () => {
    const dir = path.join(await mkdtemp(path.join(os.tmpdir(), 'klab-life-')), 'no-such-lab');
    const virt = new FakeVirt(['klab-duo_master', 'other_vm']);
    virt.nets.add('default');
    const machines = new FakeMachines();
    const events = sink();
    const removed = await destroyLab({ dir, sink: events, ports: { machines, virt } });
    expect(removed).toEqual([]);
    expect(machines.calls).toEqual([]);
    expect(await virt.domains()).toEqual(['klab-duo_master', 'other_vm']);
    const results = events.events.filter((e) => e.kind === 'result');
    expect(results.map((e) => e.code)).toEqual(['LAB_NOTHING_TO_DESTROY']);
    expect(results[0] && 'text' in results[0] ? results[0].text : '').toMatch(
      /^Nothing of a lab "no-such-lab" was found in .*no-such-lab or in libvirt: nothing to destroy\.$/,
    );
  });

  it('a lab whose VMs are already gone, its state still there: destroyed, said once', async () => {
    const dir = await labDir(DUO);
    const events = sink();
    await destroyLab({
      dir,
      sink: events,
      ports: { machines: new FakeMachines(), virt: new FakeVirt() },
    });
    const results = events.events.filter((e) => e.kind === 'result');
    expect(results.map((e) => e.code)).toEqual(['LAB_DESTROYED']);
    expect(results[0] && 'text' in results[0] ? results[0].text : '').toBe(
      'Lab "duo" destroyed; klab.yaml and logs are kept.',
    );
  });
});

describe('status', () => {
  it('shows each VM of a halted lab with its progress, without connecting to it', async () => {
    const dir = await labDir(DUO);
    await writeFile(
      path.join(dir, '.klab', 'state.json'),
      JSON.stringify({ version: 1, steps: { master: { 'default-route': 'x', etcd: 'x' } } }),
    );
    const machines = new FakeMachines();
    machines.vmStates.set('master', 'shutoff');
    const rows = await labStatus({ dir, sink: sink(), ports: { machines, virt: new FakeVirt() } });
    expect(rows.map((row) => [row.name, row.state, row.defaultRoute])).toEqual([
      ['master', 'shutoff', '-'],
      ['node1', 'not_created', '-'],
    ]);
    expect(rows[0]?.steps).toMatch(/^2\/\d+$/);
    expect(rows[1]?.steps).toMatch(/^0\/\d+$/);
  });
});

describe('the box fallback', () => {
  let cache: string;
  let saved: string | undefined;
  beforeEach(async () => {
    saved = process.env.KLAB_CACHE_DIR;
    cache = await mkdtemp(path.join(os.tmpdir(), 'klab-cache-'));
    process.env.KLAB_CACHE_DIR = cache;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.KLAB_CACHE_DIR;
    else process.env.KLAB_CACHE_DIR = saved;
  });

  function boxDeps(
    machines: FakeMachines,
    events: { emit(e: KlabEvent): void },
  ): BoxDeps & {
    built: string[];
  } {
    const built: string[] = [];
    return {
      built,
      sink: events,
      async runBuildScript(argv) {
        const box = argv[argv.indexOf('--box') + 1] ?? '';
        built.push(box);
        await mkdir(path.dirname(box), { recursive: true });
        await writeFile(box, 'a box');
        return { exitCode: 0, tail: '' };
      },
      isRoot: () => true,
      missingTools: async () => [],
      installedBoxes: async () => (await machines.boxList()).map((box) => box.name),
      async addBox(name, file) {
        const result = await machines.boxAdd(name, file);
        return { ok: result.exitCode === 0, tail: '' };
      },
    };
  }

  /** A lab that is not created yet, its Vagrant faked; `setup` says what Vagrant has. */
  async function boxLab(yaml: string, setup: (machines: FakeMachines) => void) {
    const machines = new FakeMachines();
    setup(machines);
    const events = sink();
    const dir = await labDir(yaml, false);
    const lab = await openLab({ dir, sink: events, ports: { machines, virt: new FakeVirt() } });
    return { lab, machines, events, deps: boxDeps(machines, events) };
  }

  it('the default box cannot be downloaded: the local Debian box and the mirror-only stack, said plainly', async () => {
    const { lab, events, deps } = await boxLab('name: plain\n', (machines) => {
      machines.boxAddResult = { exitCode: 1, stderr: 'Could not resolve host: vagrantcloud.com' };
    });
    const chosen = await resolveBox(lab, deps);

    expect(chosen).toEqual({ box: 'klab/debian-12', stack: 'debian' });
    const recipe = localRecipe('klab/debian-12');
    if (!recipe) throw new Error('no recipe');
    expect(deps.built).toEqual([(await boxBuildPaths(recipe)).box]);
    const warning = events.events.find((e) => e.kind === 'notice' && e.code === 'FALLBACK_BOX');
    expect(warning && 'text' in warning ? warning.text : '').toMatch(
      /^The default box generic\/ubuntu1804 cannot be downloaded from this host, so klab falls back to a locally built klab\/debian-12 box and the mirror-only "debian" stack/,
    );
    expect(lab.state.fallbacks).toHaveLength(1);
  });

  it('a box the user insisted on is never replaced: the error says how to build one', async () => {
    const { lab, deps } = await boxLab('name: plain\nbox: generic/ubuntu1804\n', (machines) => {
      machines.boxAddResult = { exitCode: 1, stderr: 'Could not resolve host' };
    });
    const error = (await resolveBox(lab, deps).catch((e) => e)) as KlabError;
    expect(error.code).toBe('KLAB_BOX_UNAVAILABLE');
    expect(error.hint).toMatch(/klab box build/);
  });

  it('a box Vagrant already has is used as it is, with the stack of the spec', async () => {
    const { lab, machines, deps } = await boxLab('name: plain\n', (m) => {
      m.boxes = [{ name: 'generic/ubuntu1804', provider: 'libvirt', version: '4' }];
    });
    expect(await resolveBox(lab, deps)).toEqual({
      box: 'generic/ubuntu1804',
      stack: 'v1.11.1',
    });
    expect(machines.calls).toEqual([]);
  });
});
