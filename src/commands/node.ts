/** klab node add NAME [--memory M] [--cpus N] [--undo] | remove NAME: one call of src/app/nodes.ts. */
import { addNode, removeNode } from '../app/nodes.js';
import { KlabError } from '../model/errors.js';
import type { KlabCommand } from './command.js';

function wholeNumber(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new KlabError('KLAB_USAGE', `--${flag} must be a whole number`, {
      hint: `For example: klab node add node4 --${flag} ${flag === 'memory' ? 2048 : 1}`,
    });
  }
  return value;
}

export const nodeCommand: KlabCommand = {
  command: 'node <action> <name>',
  writesLab: () => 'lab',
  describe:
    'Add a worker VM to the running lab (booted, provisioned, joined through TLS bootstrapping), or remove one without a trace',
  builder: (y) =>
    y
      .positional('action', { choices: ['add', 'remove'] as const })
      .positional('name', { type: 'string', describe: 'the VM (and Node) name, e.g. node4' })
      .option('memory', { type: 'number', describe: 'add: MB of RAM (default 2048)' })
      .option('cpus', { type: 'number', describe: 'add: vCPUs (default 2; 1 under TCG)' })
      .option('undo', {
        type: 'boolean',
        default: false,
        describe: 'add: take back an add (done or failed half-way): the same as remove',
      })
      .option('yes', {
        alias: 'y',
        type: 'boolean',
        default: false,
        describe: 'remove: do not ask',
      }),
  logsInLab: 'always',
  async run(args, io) {
    const name = String(args.name);
    const request = { dir: args.dir, sink: io.reporter };
    if (args.action === 'add' && args.undo !== true) {
      await addNode(request, {
        name,
        memory: wholeNumber(args.memory, 'memory'),
        cpus: wholeNumber(args.cpus, 'cpus'),
      });
      return 0;
    }
    // Its pods are evicted and its VM destroyed: ask, as destroy does (--undo is the answer).
    if (args.action === 'remove' && args.yes !== true) {
      if (!io.stdinIsTty) {
        throw new KlabError('KLAB_ABORTED', `removing ${name} needs confirmation`, {
          hint: `Nothing was changed. Run "klab node remove ${name} --yes" to confirm without a terminal.`,
        });
      }
      if (
        !(await io.confirm(
          `Remove ${name} from the lab? Its pods are evicted and its VM destroyed.`,
        ))
      ) {
        throw new KlabError('KLAB_ABORTED', 'cancelled; nothing was changed');
      }
    }
    await removeNode(request, name);
    return 0;
  },
};
