/** The real-world side of box building: scripts, root check, tools, Vagrant's box list. */

import os from 'node:os';
import { findExecutable, runProcess } from '../adapters/process.js';
import { Vagrant } from '../adapters/vagrant.js';
import { tail } from '../model/errors.js';
import type { EventSink } from '../model/events.js';
import type { Machines } from '../model/ports.js';
import type { BoxDeps } from './box.js';

export function boxDeps(sink: EventSink, vagrant: Machines): BoxDeps {
  return {
    sink,
    async runBuildScript(argv, onLine) {
      const result = await runProcess(argv, { onLine: (line) => onLine(line) });
      return { exitCode: result.exitCode, tail: tail(`${result.stdout}\n${result.stderr}`) };
    },
    isRoot: () => process.getuid?.() === 0,
    async missingTools(tools) {
      const missing: string[] = [];
      for (const tool of tools) if (!(await findExecutable(tool))) missing.push(tool);
      return missing;
    },
    async installedBoxes() {
      return (await vagrant.boxList()).filter((b) => b.provider === 'libvirt').map((b) => b.name);
    },
    async addBox(name, file) {
      const result = await vagrant.boxAdd(name, file, 30 * 60_000);
      return { ok: result.exitCode === 0, tail: tail(`${result.stdout}\n${result.stderr}`) };
    },
  };
}

/** Box building outside a lab (klab box build): Vagrant run from a neutral directory. */
export function hostBoxDeps(sink: EventSink): BoxDeps {
  const vagrant = new Vagrant(os.tmpdir(), {
    onLine: (line) => sink.emit({ kind: 'output', code: 'OUTPUT', source: 'vagrant', line }),
  });
  return boxDeps(sink, vagrant);
}
