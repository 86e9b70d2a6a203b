/** klab artifacts list | pull | verify | export FILE | import FILE */

import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Vagrant } from '../adapters/vagrant.js';
import { boxBuildPaths, localRecipe } from '../core/boxes.js';
import { KlabError } from '../core/errors.js';
import { task } from '../core/events.js';
import { labPaths } from '../core/lab.js';
import { debianBuildDeps } from '../core/lab-ops.js';
import { loadSpec } from '../core/spec-file.js';
import { buildDebianStack } from '../stacks/build-debian.js';
import { mirrorConfig, readLock, writeLock } from '../stacks/cache.js';
import { loadStack } from '../stacks/index.js';
import {
  artifactStatuses,
  exportBundle,
  importBundle,
  pullStack,
  verifyCache,
} from '../stacks/ops.js';
import { formatTable } from '../ui/table.js';
import type { KlabCommand } from './command.js';

export const artifactsCommand: KlabCommand = {
  command: 'artifacts <action> [file]',
  describe:
    "The stack's binaries and images in the shared cache: list, pull, verify, export FILE, import FILE",
  builder: (y) =>
    y
      .positional('action', {
        choices: ['list', 'pull', 'build', 'verify', 'export', 'import'] as const,
      })
      .positional('file', { type: 'string', describe: 'bundle file (export, import)' })
      .option('stack', { type: 'string', describe: "stack to act on (default: the lab's)" })
      .option('mirror', {
        type: 'string',
        default: 'http://deb.debian.org/debian',
        describe: 'build: the Debian mirror to build from',
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'build: rebuild what is cached too',
      }),
  logsInLab: 'if-lab',
  async run(args, io) {
    const paths = labPaths(args.dir);
    const spec = await loadSpec(paths.dir);
    const stack = loadStack(typeof args.stack === 'string' ? args.stack : spec.stack);
    const lockFile = path.join(paths.dir, 'klab.lock.json');
    const lock = await readLock(lockFile);
    const action = String(args.action);
    const file = typeof args.file === 'string' ? args.file : undefined;
    if ((action === 'export' || action === 'import') && !file) {
      throw new KlabError('KLAB_USAGE', `klab artifacts ${action} needs a file name`, {
        hint: `For example: klab artifacts ${action} klab-${stack.name}.bundle.tar`,
      });
    }
    if (action === 'list') {
      const rows = (await artifactStatuses(stack, lock)).map((s) => [
        s.artifact.id,
        s.artifact.version,
        s.source,
        s.checksum === 'official'
          ? 'official'
          : s.checksum === 'pinned'
            ? 'pinned (lock)'
            : 'pin on first download',
        s.cached ? 'yes' : 'no',
        s.verified ? 'yes' : s.cached ? 'NO' : '-',
      ]);
      io.reporter.emit({
        kind: 'result',
        text: `${stack.title}\n${formatTable(['ARTIFACT', 'VERSION', 'SOURCE', 'CHECKSUM', 'CACHED', 'VERIFIED'], rows)}`,
      });
      return 0;
    }
    if (action === 'pull') {
      const result = await pullStack(stack, lock, mirrorConfig(spec), io.reporter).finally(() =>
        writeLock(lockFile, lock),
      );
      const lines = [
        `${result.fetched.length} artifact(s) verified in the cache; ${result.bytesDownloaded} bytes downloaded.`,
        ...result.skipped.map((s) => `not pulled: ${s.id}: ${s.why}`),
      ];
      io.reporter.emit({ kind: 'result', text: lines.join('\n') });
      return 0;
    }
    if (action === 'build') {
      if (stack.name !== 'debian') {
        throw new KlabError('KLAB_USAGE', `the ${stack.name} stack is downloaded, not built`, {
          hint: 'Use "klab artifacts pull" for it, or build the mirror-only stack: klab artifacts build --stack debian',
        });
      }
      const mirror = String(args.mirror);
      const result = await buildDebianStack(
        stack,
        lock,
        { mirror, suite: 'bookworm', force: Boolean(args.force) },
        debianBuildDeps(io.reporter, paths.dir, mirror),
      ).finally(() => writeLock(lockFile, lock));
      io.reporter.emit({
        kind: 'result',
        text: `debian stack: ${result.built.length} built (${result.built.join(', ') || 'none'}), ${result.reused.length} reused from the cache.`,
      });
      return 0;
    }
    if (action === 'verify') {
      const rows = await verifyCache(stack, lock);
      io.reporter.emit({
        kind: 'result',
        text: formatTable(
          ['ARTIFACT', 'STATE'],
          rows.map((r) => [r.id, r.state]),
        ),
      });
      const deleted = rows.filter((r) => r.state === 'deleted');
      if (deleted.length > 0) {
        throw new KlabError(
          'KLAB_CHECKSUM_MISMATCH',
          `${deleted.length} cached file(s) failed verification and were deleted`,
          {
            details: deleted.map((r) => r.id),
            hint: 'Fetch them again with "klab artifacts pull".',
          },
        );
      }
      return 0;
    }
    if (action === 'export' && file) {
      const recipe = localRecipe(spec.box);
      const boxFile = recipe ? (await boxBuildPaths(recipe)).box : undefined;
      const index = await task(io.reporter, `Write the offline bundle ${file}`, () =>
        exportBundle(
          stack,
          lock,
          file,
          boxFile && existsSync(boxFile) && recipe
            ? { box: { name: recipe.name, file: boxFile } }
            : {},
        ),
      );
      io.reporter.emit({
        kind: 'result',
        text: `${file}: ${index.artifacts.length} artifacts${index.box ? ` and the box ${index.box.name}` : ''} of stack ${stack.name}.`,
      });
      return 0;
    }
    if (action === 'import' && file) {
      const result = await task(io.reporter, `Import the offline bundle ${file}`, () =>
        importBundle(loadStack, lock, file),
      );
      try {
        if (result.boxFile && result.boxName) {
          const vagrant = new Vagrant(paths.dir);
          const added = await vagrant.boxAdd(result.boxName, result.boxFile, 30 * 60_000);
          if (added.exitCode !== 0) {
            throw new KlabError(
              'KLAB_BOX_BUILD_FAILED',
              `vagrant box add ${result.boxName} failed`,
            );
          }
          // Where klab looks for its own built box, so an offline host never tries to rebuild it.
          const recipe = localRecipe(result.boxName);
          if (recipe) {
            const target = (await boxBuildPaths(recipe)).box;
            await mkdir(path.dirname(target), { recursive: true });
            await copyFile(result.boxFile, target);
          }
        }
      } finally {
        await rm(result.extracted, { recursive: true, force: true });
      }
      await writeLock(lockFile, lock);
      io.reporter.emit({
        kind: 'result',
        text: `Imported ${result.imported.length} verified artifact(s)${result.boxName ? ` and the box ${result.boxName}` : ''} for stack ${result.index.stack}.`,
      });
      return 0;
    }
    return 0;
  },
};
