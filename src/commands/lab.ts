/** The lab lifecycle verbs: init, create, up, halt, destroy, status, ssh. */

import { runInteractive } from '../adapters/process.js';
import { createLab, initLab } from '../app/create.js';
import { destroyLab, haltLab, sshArgv, upLab } from '../app/lifecycle.js';
import { labStatus } from '../app/status.js';
import { KlabError } from '../model/errors.js';
import { result } from '../model/events.js';
import { formatTable } from '../ui/table.js';
import type { KlabCommand } from './command.js';

export const initCommand: KlabCommand = {
  command: 'init [path]',
  describe: 'Write a commented klab.yaml and render the Vagrantfile into a lab directory',
  builder: (y) =>
    y.positional('path', { type: 'string', describe: 'lab directory (default: --dir)' }),
  logsInLab: 'always',
  async run(args, io) {
    const dir = typeof args.path === 'string' ? args.path : args.dir;
    const written = await initLab({ dir, sink: io.reporter });
    io.reporter.emit({
      kind: 'result',
      code: 'LAB_INITIALIZED',
      text:
        written.length > 0
          ? `Wrote ${written.join(', ')}`
          : 'Nothing to change: klab.yaml and Vagrantfile are current.',
    });
    return 0;
  },
};

export const createCommand: KlabCommand = {
  command: 'create',
  writesLab: () => 'new-lab',
  describe:
    'Create the lab (or resume an interrupted create): boot the VMs, prepare them, provision the stack',
  builder: (y) =>
    y
      .option('box', {
        type: 'string',
        describe: 'Vagrant box to use (overrides klab.yaml; no fallback)',
      })
      .option('stack', {
        type: 'string',
        describe: 'stack: v1.11.1 or debian (overrides klab.yaml)',
      })
      .option('until', {
        type: 'string',
        describe:
          'stop after this provisioning step (e.g. kube-proxy), to do the next one by hand; "klab create" again finishes',
      }),
  logsInLab: 'always',
  async run(args, io) {
    const until = args.until as string | undefined;
    await createLab(
      {
        dir: args.dir,
        box: args.box as string | undefined,
        stack: args.stack as string | undefined,
        sink: io.reporter,
      },
      until ? { until } : {},
    );
    return 0;
  },
};

export const upCommand: KlabCommand = {
  command: 'up',
  writesLab: () => 'lab',
  describe: 'Start a halted lab and check that it is still as provisioned',
  builder: (y) => y,
  logsInLab: 'always',
  async run(args, io) {
    await upLab({ dir: args.dir, sink: io.reporter });
    return 0;
  },
};

export const haltCommand: KlabCommand = {
  command: 'halt',
  writesLab: () => 'lab',
  describe: 'Shut every VM of the lab down (klab up starts them again)',
  builder: (y) => y,
  logsInLab: 'always',
  async run(args, io) {
    await haltLab({ dir: args.dir, sink: io.reporter });
    return 0;
  },
};

export const destroyCommand: KlabCommand = {
  command: 'destroy',
  writesLab: () => 'lab',
  describe: "Delete the lab's VMs, disks, snapshots and networks (klab.yaml stays)",
  builder: (y) =>
    y.option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'do not ask' }),
  logsInLab: 'if-lab',
  async run(args, io) {
    if (!args.yes) {
      if (!io.stdinIsTty) {
        throw new KlabError('KLAB_ABORTED', 'destroy needs confirmation', {
          hint: 'Nothing was deleted. Run "klab destroy --yes" to confirm without a terminal.',
        });
      }
      if (!(await io.confirm(`Destroy the lab in ${args.dir}, its VMs and snapshots?`))) {
        throw new KlabError('KLAB_ABORTED', 'destroy cancelled; nothing was deleted');
      }
    }
    await destroyLab({ dir: args.dir, sink: io.reporter });
    return 0;
  },
};

export const statusCommand: KlabCommand = {
  command: 'status',
  describe: 'Show each VM: state, private IP, default route, provisioning progress',
  builder: (y) => y,
  logsInLab: 'if-lab',
  async run(args, io) {
    const rows = await labStatus({ dir: args.dir, sink: io.reporter });
    result(
      io.reporter,
      'LAB_STATUS',
      formatTable(
        ['VM', 'STATE', 'PRIVATE IP', 'DEFAULT ROUTE', 'STEPS'],
        rows.map((row) => [row.name, row.state, row.ip, row.defaultRoute, row.steps]),
      ),
      { kind: 'Status', vms: rows },
    );
    return 0;
  },
};

export const sshCommand: KlabCommand = {
  command: 'ssh <vm> [command..]',
  describe: 'Open a shell on a VM, or run one command there (klab ssh node1 -- hostname)',
  builder: (y) =>
    y
      .positional('vm', { type: 'string', describe: 'VM name (master, node1, ...)' })
      .positional('command', {
        type: 'string',
        array: true,
        describe: 'command to run (after --)',
      }),
  logsInLab: 'never',
  async run(args, io) {
    const afterDashes = (args['--'] as string[] | undefined) ?? [];
    const positional = (args.command as string[] | undefined) ?? [];
    const command = [...positional, ...afterDashes].map(String);
    const argv = await sshArgv({ dir: args.dir, sink: io.reporter }, String(args.vm), command);
    return runInteractive(argv);
  },
};
