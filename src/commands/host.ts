import { buildBox, listBoxes } from '../app/box.js';
import { hostBoxDeps } from '../app/box-deps.js';
import { runDoctor } from '../app/doctor.js';
import { runGuestDoctor } from '../app/guest-doctor.js';
import type { Finding } from '../app/preflight.js';
import { result } from '../model/events.js';
import { formatTable } from '../ui/table.js';
import type { KlabCommand } from './command.js';

export const doctorCommand: KlabCommand = {
  command: 'doctor',
  describe:
    'Check the host for everything a lab needs (--guests: and inside every VM); print a fix for each problem',
  builder: (y) =>
    y.option('guests', {
      type: 'boolean',
      default: false,
      describe:
        'also look inside the running VMs: route, kernel, swap, machine-id, clock, units, certificates, etcd, flannel, FORWARD, resolv.conf',
    }),
  logsInLab: 'if-lab',
  async run(args, io) {
    const findings: (Finding & { vm?: string })[] = await runDoctor(args.dir, io.reporter);
    if (args.guests) findings.push(...(await runGuestDoctor({ dir: args.dir, sink: io.reporter })));
    const mark = { ok: 'ok', warn: 'WARN', fail: 'FAIL' } as const;
    const lines = findings.map((finding) => {
      const where = finding.vm ? `${finding.vm}: ` : '';
      const head = `${mark[finding.status].padEnd(4)}  ${where}${finding.check}: ${finding.detail}`;
      return finding.fix && finding.status !== 'ok' ? `${head}\n      fix: ${finding.fix}` : head;
    });
    const failed = findings.filter((finding) => finding.status === 'fail').length;
    const subject = args.guests ? 'The host and the VMs look' : 'The host is';
    lines.push(
      failed === 0
        ? `${subject} ready for klab.`
        : `${failed} problem(s) to fix${args.guests ? '' : ' before "klab create"'}.`,
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
      const boxes = await listBoxes();
      result(
        io.reporter,
        'BOX_LIST',
        formatTable(
          ['BOX', 'SUITE', 'MIRROR', 'CACHE'],
          boxes.map((b) => [b.name, b.suite, b.mirror, b.built ? 'built' : 'not built']),
        ),
        { kind: 'BoxList', items: boxes },
      );
      return 0;
    }
    const { recipe, paths } = await buildBox(hostBoxDeps(io.reporter), {
      ...(typeof args.suite === 'string' ? { suite: args.suite } : {}),
      ...(typeof args.mirror === 'string' ? { mirror: args.mirror } : {}),
      ...(typeof args.name === 'string' ? { name: args.name } : {}),
      force: Boolean(args.force),
    });
    result(
      io.reporter,
      'BOX_READY',
      `Box ${recipe.name} is ready (${paths.box}). Use it with "box: ${recipe.name}" in klab.yaml or --box ${recipe.name}.`,
      { kind: 'Box', name: recipe.name, file: paths.box },
    );
    return 0;
  },
};
