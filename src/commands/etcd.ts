/** klab etcd backup [FILE] | restore FILE: flags to one call of src/app/etcd.ts. */
import { etcdBackup, etcdRestore } from '../app/etcd.js';
import { KlabError } from '../model/errors.js';
import type { KlabCommand } from './command.js';

export const etcdCommand: KlabCommand = {
  command: 'etcd <action> [file]',
  writesLab: () => 'lab',
  describe:
    "Back up the cluster's etcd to a file in the lab directory, or restore every member from one",
  builder: (y) =>
    y
      .positional('action', { choices: ['backup', 'restore'] as const })
      .positional('file', {
        type: 'string',
        describe:
          'backup: where to write (default .klab/backups/etcd-<time>.db); restore: the backup',
      })
      .option('yes', {
        alias: 'y',
        type: 'boolean',
        default: false,
        describe: 'restore: do not ask',
      }),
  logsInLab: 'always',
  async run(args, io) {
    const file = typeof args.file === 'string' ? args.file : undefined;
    if (args.action === 'backup') {
      await etcdBackup({ dir: args.dir, sink: io.reporter }, file);
      return 0;
    }
    if (!file) {
      throw new KlabError('KLAB_USAGE', 'klab etcd restore needs the backup file', {
        hint: 'For example: klab etcd restore .klab/backups/etcd-20261130-091500.db',
      });
    }
    // Everything the cluster did since the backup is lost: ask, as destroy does.
    if (!args.yes) {
      if (!io.stdinIsTty) {
        throw new KlabError('KLAB_ABORTED', 'etcd restore needs confirmation', {
          hint: `Nothing was stopped. Run "klab etcd restore ${file} --yes" to confirm without a terminal.`,
        });
      }
      const question = `Restore etcd from ${file}? What the cluster changed since that backup is lost.`;
      if (!(await io.confirm(question))) {
        throw new KlabError('KLAB_ABORTED', 'restore cancelled; nothing was stopped');
      }
    }
    await etcdRestore({ dir: args.dir, sink: io.reporter }, file);
    return 0;
  },
};
