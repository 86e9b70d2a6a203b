/** klab certs generate | list | check | renew: flags to one call of src/app/certs.ts. */
import { checkCerts, checkServed, listCerts, openPki, renewCerts } from '../app/certs.js';
import { KlabError } from '../model/errors.js';
import { result } from '../model/events.js';
import { formatTable } from '../ui/table.js';
import type { KlabCommand } from './command.js';

export const certsCommand: KlabCommand = {
  command: 'certs <action> [name]',
  writesLab: (args) => (args.action === 'generate' || args.action === 'renew' ? 'lab' : false),
  describe:
    "The lab's own CA, certificates and kubeconfigs: generate, list, check, renew [NAME|all|ca]",
  builder: (y) =>
    y
      .positional('action', { choices: ['generate', 'list', 'check', 'renew'] as const })
      .positional('name', {
        type: 'string',
        describe: 'with renew: a certificate name, "all" or "ca"',
      })
      .option('host-only', {
        type: 'boolean',
        default: false,
        describe: 'with renew: re-issue on the host only, copy nothing to the VMs',
      })
      .option('pki-dir', {
        type: 'string',
        describe: 'where the PKI lives (default: <lab>/.klab/pki)',
      }),
  logsInLab: 'if-lab',
  async run(args, io) {
    const target = await openPki(
      args.dir,
      typeof args['pki-dir'] === 'string' ? args['pki-dir'] : undefined,
    );
    const action = String(args.action);
    if (action === 'generate' || action === 'renew') {
      const renew = action === 'renew' ? [typeof args.name === 'string' ? args.name : 'all'] : [];
      const { done, pushed } = await renewCerts(
        { dir: args.dir, sink: io.reporter },
        target,
        renew,
        // A PKI elsewhere (--pki-dir) is not the one the VMs use: nothing is copied.
        action === 'generate' || args['host-only'] === true || typeof args['pki-dir'] === 'string',
      );
      const onVms = pushed
        ? pushed
            .filter((entry) => entry.files.length > 0)
            .map(
              (entry) =>
                `${entry.vm}: ${entry.files.length} file(s) copied; restarted: ${entry.restarted.join(', ') || 'nothing'}`,
            )
        : [];
      result(
        io.reporter,
        'CERTS_GENERATED',
        `issued: ${done.issued.join(', ') || 'nothing'}\n` +
          `reused: ${done.reused.length} unchanged\n` +
          `updated files: ${done.written.join(', ') || 'none'}` +
          (action !== 'renew'
            ? ''
            : pushed
              ? `\non the VMs: ${onVms.join('; ') || 'nothing changed'}`
              : '\non the VMs: nothing copied (no running lab, or --host-only); the next "klab create" copies them'),
        { kind: 'CertsGenerated', dir: target.dir, ...done, ...(pushed ? { pushed } : {}) },
      );
      return 0;
    }
    if (action === 'list') {
      const items = await listCerts(target);
      const rows = items.map((c) =>
        c.state !== 'ok'
          ? [
              c.state === 'missing' ? c.name : `${c.name}.crt`,
              c.state === 'missing' ? '(missing)' : '(corrupt: klab certs check)',
              '',
              '',
              '',
              '',
            ]
          : [
              `${c.name}.crt`,
              c.subject ?? '',
              (c.issuer ?? '').replace(/^.*CN=/, 'CN='),
              c.sans?.join(',') || '-',
              c.isCa ? 'CA' : (c.usages ?? []).join('+'),
              (c.notAfter ?? '').slice(0, 10),
            ],
      );
      result(
        io.reporter,
        'CERT_LIST',
        formatTable(['FILE', 'SUBJECT', 'ISSUER', 'SANS', 'USAGES', 'EXPIRES'], rows),
        { kind: 'CertificateList', dir: target.dir, items },
      );
      return 0;
    }
    // The files, then (on a lab with running VMs) what its servers really present.
    const findings = [
      ...(await checkCerts(target)),
      ...(typeof args['pki-dir'] === 'string'
        ? []
        : await checkServed({ dir: args.dir, sink: io.reporter }, target)),
    ];
    const lines = findings
      .filter((f) => f.status !== 'ok')
      .map((f) => `${f.status === 'fail' ? 'FAIL' : 'WARN'}  ${f.name}: ${f.detail}`);
    const failed = findings.filter((f) => f.status === 'fail');
    lines.push(
      `${findings.length - failed.length} of ${findings.length} certificates and kubeconfigs are fine.`,
    );
    result(io.reporter, 'CERTS_CHECKED', lines.join('\n'), { kind: 'CertificateCheck', findings });
    if (failed.length > 0) {
      throw new KlabError(
        'KLAB_CERTS_INVALID',
        `${failed.length} certificate problem(s) in ${target.dir}`,
        {
          hint: 'Run "klab certs generate" to re-issue what is out of date.',
        },
      );
    }
    return 0;
  },
};
