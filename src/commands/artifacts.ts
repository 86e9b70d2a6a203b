/** klab artifacts list | pull | build | verify | export FILE | import FILE */

import {
  artifactList,
  buildArtifacts,
  exportArtifacts,
  importArtifacts,
  openStack,
  pullArtifacts,
  vagrantImportDeps,
  verifyArtifacts,
} from '../app/artifacts.js';
import { KlabError } from '../model/errors.js';
import { type ResultData, result } from '../model/events.js';
import { formatTable } from '../ui/table.js';
import type { KlabCommand } from './command.js';

const CHECKSUM_WORDS = {
  official: 'official',
  pinned: 'pinned (lock)',
  'on-first-build': 'pin on first build',
  'on-first-download': 'pin on first download',
} as const;

export const artifactsCommand: KlabCommand = {
  command: 'artifacts <action> [file]',
  describe:
    "The stack's binaries and images in the shared cache: list, pull, build, verify, export FILE, import FILE",
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
    const ctx = await openStack(
      args.dir,
      typeof args.stack === 'string' ? args.stack : undefined,
      io.reporter,
    );
    const action = String(args.action);
    const file = typeof args.file === 'string' ? args.file : undefined;
    const say = (text: string, data?: ResultData) =>
      result(io.reporter, action === 'list' ? 'ARTIFACT_LIST' : 'ARTIFACTS_DONE', text, data);
    if ((action === 'export' || action === 'import') && !file) {
      throw new KlabError('KLAB_USAGE', `klab artifacts ${action} needs a file name`, {
        hint: `For example: klab artifacts ${action} klab-${ctx.stack.name}.bundle.tar`,
      });
    }
    if (action === 'list') {
      const items = await artifactList(ctx);
      const headers = ['ARTIFACT', 'VERSION', 'SOURCE', 'CHECKSUM', 'CACHED', 'VERIFIED'];
      const rows = items.map((a) => [
        a.id,
        a.version,
        a.source,
        CHECKSUM_WORDS[a.checksum],
        a.cached ? 'yes' : 'no',
        a.verified ? 'yes' : a.cached ? 'NO' : '-',
      ]);
      say(`${ctx.stack.title}\n${formatTable(headers, rows)}`, {
        kind: 'ArtifactList',
        stack: ctx.stack.name,
        items,
      });
    } else if (action === 'pull') {
      const result = await pullArtifacts(ctx);
      say(
        [
          `${result.fetched.length} artifact(s) verified in the cache; ${result.bytesDownloaded} bytes downloaded.`,
          ...result.skipped.map((s) => `not pulled: ${s.id}: ${s.why}`),
        ].join('\n'),
      );
    } else if (action === 'build') {
      const result = await buildArtifacts(ctx, {
        mirror: String(args.mirror),
        force: Boolean(args.force),
      });
      say(
        `${ctx.stack.name} stack: ${result.built.length} built (${result.built.join(', ') || 'none'}), ` +
          `${result.reused.length} reused from the cache.`,
      );
    } else if (action === 'verify') {
      const { rows, deleted } = await verifyArtifacts(ctx);
      say(
        formatTable(
          ['ARTIFACT', 'STATE'],
          rows.map((r) => [r.id, r.state]),
        ),
      );
      if (deleted.length > 0) {
        throw new KlabError(
          'KLAB_CHECKSUM_MISMATCH',
          `${deleted.length} cached file(s) failed verification and were deleted`,
          {
            details: deleted.map((r) => r.id),
            hint: 'Fetch them again with "klab artifacts pull" (or "klab artifacts build" for the debian stack).',
          },
        );
      }
    } else if (action === 'export' && file) {
      const index = await exportArtifacts(ctx, file);
      say(
        `${file}: ${index.artifacts.length} artifacts${index.box ? ` and the box ${index.box.name}` : ''} of stack ${ctx.stack.name}.`,
      );
    } else if (action === 'import' && file) {
      const result = await importArtifacts(ctx, file, vagrantImportDeps(ctx.dir));
      say(
        `Imported ${result.imported.length} verified artifact(s)${result.boxName ? ` and the box ${result.boxName}` : ''} ` +
          `for stack ${result.index.stack}.`,
      );
    }
    return 0;
  },
};
