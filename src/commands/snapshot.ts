/** klab snapshot save|list|delete|prune, and klab reset [NAME]. */

import { openCreatedLab } from '../app/lab.js';
import {
  deleteSnapshot,
  listSnapshots,
  pruneSnapshots,
  resetLab,
  saveSnapshot,
} from '../app/snapshots.js';
import { KlabError } from '../model/errors.js';
import { result } from '../model/events.js';
import { formatAge, formatBytes } from '../model/snapshots.js';
import { formatTable } from '../ui/table.js';
import type { KlabCommand } from './command.js';

export const snapshotCommand: KlabCommand = {
  command: 'snapshot <action> [name]',
  writesLab: (args) => (args.action === 'list' ? false : 'lab'),
  describe: 'Save, list, delete or prune whole-lab snapshots (every VM paused and saved together)',
  builder: (y) =>
    y
      .positional('action', { choices: ['save', 'list', 'delete', 'prune'] as const })
      .positional('name', { type: 'string', describe: 'snapshot name (save, delete)' })
      .option('all', {
        type: 'boolean',
        default: false,
        describe: 'prune: delete every snapshot, not only checkpoints',
      }),
  logsInLab: 'always',
  async run(args, io) {
    const lab = await openCreatedLab({ dir: args.dir, sink: io.reporter });
    const action = String(args.action);
    const name = typeof args.name === 'string' ? args.name : undefined;
    if ((action === 'save' || action === 'delete') && !name) {
      throw new KlabError('KLAB_USAGE', `klab snapshot ${action} needs a name`, {
        hint: `For example: klab snapshot ${action} before-etcd`,
      });
    }
    if (action === 'save' && name) {
      await saveSnapshot(lab, name, { connect: true });
      io.reporter.emit({
        kind: 'result',
        code: 'SNAPSHOT_SAVED',
        text: `Saved "${name}". Go back to it with: klab reset ${name}`,
        data: { kind: 'Snapshot', name },
      });
    } else if (action === 'delete' && name) {
      await deleteSnapshot(lab, name);
      io.reporter.emit({ kind: 'result', code: 'SNAPSHOT_DELETED', text: `Deleted "${name}".` });
    } else if (action === 'prune') {
      const pruned = await pruneSnapshots(lab, Boolean(args.all));
      io.reporter.emit({
        kind: 'result',
        code: 'SNAPSHOTS_PRUNED',
        text: pruned.length > 0 ? `Deleted: ${pruned.join(', ')}` : 'Nothing to prune.',
      });
    } else {
      const now = Date.now();
      const all = lab.spec.vms.map((vm) => vm.name);
      const snapshots = await listSnapshots(lab);
      const rows = snapshots.map((snap) => [
        snap.name,
        snap.afterStep ?? '-',
        formatAge(now - snap.createdAt),
        formatBytes(snap.stateBytes),
        snap.vms.length === all.length ? 'all' : `only ${snap.vms.join(',')}`,
      ]);
      result(
        io.reporter,
        'SNAPSHOT_LIST',
        rows.length > 0
          ? formatTable(['NAME', 'AFTER STEP', 'AGE', 'SAVED STATE', 'VMS'], rows)
          : 'No snapshots yet.',
        {
          kind: 'SnapshotList',
          items: snapshots.map((snap) => ({
            ...snap,
            createdAt: new Date(snap.createdAt).toISOString(),
            complete: snap.vms.length === all.length,
          })),
        },
      );
    }
    return 0;
  },
};

export const resetCommand: KlabCommand = {
  command: 'reset [name]',
  writesLab: () => 'lab',
  describe:
    'Put every VM back to a snapshot (default: the newest), step the clocks, wait until healthy',
  builder: (y) =>
    y.positional('name', { type: 'string', describe: 'snapshot name (klab snapshot list)' }),
  logsInLab: 'always',
  async run(args, io) {
    const result = await resetLab(
      { dir: args.dir, sink: io.reporter },
      typeof args.name === 'string' ? args.name : undefined,
    );
    io.reporter.emit({
      kind: 'result',
      code: 'LAB_RESET',
      text: `Reset to "${result.snapshot}" in ${result.seconds.toFixed(1)} s.`,
      data: { kind: 'Reset', ...result },
    });
    return 0;
  },
};
