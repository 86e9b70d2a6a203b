/** A lab opened from its directory: spec, state, Vagrant; and SSH sessions into its VMs. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Vagrant } from '../adapters/vagrant.js';
import type { StepContext } from '../steps/step.js';
import { KlabError } from './errors.js';
import { type EventSink, systemClock, task } from './events.js';
import { type LabPaths, labPaths } from './lab.js';
import { packagePath } from './package-root.js';
import { connectAll, type HostPool } from './session.js';
import type { LabSpec } from './spec.js';
import { loadSpec, type SpecOverrides } from './spec-file.js';
import { type LabState, loadState } from './state.js';

export interface LabOptions extends SpecOverrides {
  dir: string;
}

export interface Lab {
  paths: LabPaths;
  spec: LabSpec;
  state: LabState;
  vagrant: Vagrant;
  sink: EventSink;
}

export async function openLab(options: LabOptions, sink: EventSink): Promise<Lab> {
  const paths = labPaths(options.dir);
  const spec = await loadSpec(paths.dir, options);
  const state = await loadState(paths.stateFile);
  const vagrant = new Vagrant(paths.dir, {
    onLine: (line) => sink.emit({ kind: 'output', source: 'vagrant', line }),
  });
  return { paths, spec, state, vagrant, sink };
}

/** A lab exists once klab rendered its Vagrantfile. */
export function requireCreated(lab: Lab): void {
  if (!existsSync(lab.paths.vagrantfile)) {
    throw new KlabError('KLAB_NO_LAB', `no lab in ${lab.paths.dir}`, {
      hint: 'Create one with "klab create" (or point at it with --dir).',
    });
  }
}

export function stepContext(lab: Lab, pool: HostPool): StepContext {
  return {
    spec: lab.spec,
    sink: lab.sink,
    clock: systemClock,
    host: (vm) => pool.get(vm),
    provisionFile: (...parts) => readFile(packagePath('provision', ...parts), 'utf8'),
  };
}

export async function withHosts<T>(lab: Lab, fn: (pool: HostPool) => Promise<T>): Promise<T> {
  const pool = await task(lab.sink, 'Connect to every VM over SSH', () =>
    connectAll(
      lab.vagrant,
      lab.spec.vms.map((vm) => vm.name),
      lab.sink,
      lab.spec.timeouts.ssh * 1000,
    ),
  );
  try {
    return await fn(pool);
  } finally {
    await pool.closeAll();
  }
}
