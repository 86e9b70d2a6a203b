/** Host-level verbs: doctor, and box build/list. */

import { existsSync } from 'node:fs';
import os from 'node:os';
import { Vagrant } from '../adapters/vagrant.js';
import {
  boxBuildPaths,
  ensureLocalBox,
  LOCAL_BOXES,
  localRecipe,
  recipeForSuite,
} from '../app/box.js';
import { boxDeps } from '../app/box-deps.js';
import { runDoctor } from '../app/doctor.js';
import { result } from '../model/events.js';
import { formatTable } from '../ui/table.js';
import type { KlabCommand } from './command.js';

export const doctorCommand: KlabCommand = {
  command: 'doctor',
  describe: 'Check the host for everything a lab needs; print a fix for each problem',
  builder: (y) => y,
  logsInLab: 'if-lab',
  async run(args, io) {
    const findings = await runDoctor(args.dir, io.reporter);
    const mark = { ok: 'ok', warn: 'WARN', fail: 'FAIL' } as const;
    const lines = findings.map((finding) => {
      const head = `${mark[finding.status].padEnd(4)}  ${finding.check}: ${finding.detail}`;
      return finding.fix && finding.status !== 'ok' ? `${head}\n      fix: ${finding.fix}` : head;
    });
    const failed = findings.filter((finding) => finding.status === 'fail').length;
    lines.push(
      failed === 0
        ? 'The host is ready for klab.'
        : `${failed} problem(s) to fix before "klab create".`,
    );
    result(io.reporter, 'DOCTOR_REPORT', lines.join('\n'), {
      kind: 'DoctorReport',
      ready: failed === 0,
      findings,
    });
    return failed === 0 ? 0 : 3;
  },
};

export const boxCommand: KlabCommand = {
  command: 'box <action>',
  describe:
    'Build a libvirt box locally with debootstrap (box build), or list buildable boxes (box list)',
  builder: (y) =>
    y
      .positional('action', { choices: ['build', 'list'] as const, describe: 'build or list' })
      .option('suite', {
        type: 'string',
        describe: 'Debian/Ubuntu suite: bookworm (default) or bionic (Ubuntu 18.04)',
      })
      .option('mirror', {
        type: 'string',
        describe: 'Debian or Ubuntu mirror URL (file:// works too)',
      })
      .option('name', {
        type: 'string',
        describe: 'box name to register (default klab/debian-12 or klab/ubuntu-18.04)',
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'rebuild even if a cached build exists',
      }),
  logsInLab: 'never',
  async run(args, io) {
    if (args.action === 'list') {
      const rows = await Promise.all(
        LOCAL_BOXES.map(async (box) => {
          const paths = await boxBuildPaths(box);
          return [box.name, box.suite, box.mirror, existsSync(paths.box) ? 'built' : 'not built'];
        }),
      );
      io.reporter.emit({
        kind: 'result',
        code: 'BOX_LIST',
        text: formatTable(['BOX', 'SUITE', 'MIRROR', 'CACHE'], rows),
      });
      return 0;
    }
    const named = typeof args.name === 'string' ? localRecipe(args.name) : undefined;
    const recipe = recipeForSuite(
      (args.suite as string | undefined) ?? named?.suite ?? 'bookworm',
      args.mirror as string | undefined,
      args.name as string | undefined,
    );
    const vagrant = new Vagrant(os.tmpdir(), {
      onLine: (line) =>
        io.reporter.emit({ kind: 'output', code: 'OUTPUT', source: 'vagrant', line }),
    });
    const paths = await ensureLocalBox(recipe, boxDeps(io.reporter, vagrant), {
      force: Boolean(args.force),
    });
    io.reporter.emit({
      kind: 'result',
      code: 'BOX_READY',
      text: `Box ${recipe.name} is ready (${paths.box}). Use it with "box: ${recipe.name}" in klab.yaml or --box ${recipe.name}.`,
    });
    return 0;
  },
};
