/** klab certs generate | list | check | renew */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { KlabError } from '../model/errors.js';
import { task } from '../model/events.js';
import { labPaths } from '../model/lab-paths.js';
import { loadSpec } from '../model/spec-file.js';
import { loadState } from '../model/state.js';
import { checkPki } from '../pki/check.js';
import { generatePki, pkiFiles } from '../pki/generate.js';
import { inspectCertificate } from '../pki/inspect.js';
import { planPki } from '../pki/plan.js';
import { formatTable } from '../ui/table.js';
import type { KlabCommand } from './command.js';

function pkiDir(args: { dir: string; 'pki-dir'?: unknown }): string {
  return typeof args['pki-dir'] === 'string'
    ? path.resolve(args['pki-dir'])
    : labPaths(args.dir).pkiDir;
}

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
      .option('pki-dir', {
        type: 'string',
        describe: 'where the PKI lives (default: <lab>/.klab/pki)',
      }),
  logsInLab: 'if-lab',
  async run(args, io) {
    const loaded = await loadSpec(labPaths(args.dir).dir);
    // The stack the lab really runs (after a fallback) decides the encryption config format.
    const state = await loadState(labPaths(args.dir).stateFile);
    const spec = { ...loaded, stack: state.stack ?? loaded.stack };
    const dir = pkiDir(args);
    const action = String(args.action);
    if (action === 'generate' || action === 'renew') {
      const renew = action === 'renew' ? [typeof args.name === 'string' ? args.name : 'all'] : [];
      const known = new Set([
        'all',
        'ca',
        'etcd-ca',
        'front-proxy-ca',
        'sa',
        ...planPki(spec).certs.map((c) => c.name),
      ]);
      for (const name of renew) {
        if (!known.has(name)) {
          throw new KlabError('KLAB_USAGE', `there is no certificate "${name}"`, {
            hint: 'See the names with "klab certs list".',
          });
        }
      }
      const result = await task(
        io.reporter,
        `Generate the lab PKI in ${dir}`,
        () => generatePki(spec, { dir, renew }),
        (r) => `${r.issued.length} issued, ${r.reused.length} reused`,
      );
      io.reporter.emit({
        kind: 'result',
        text:
          `issued: ${result.issued.join(', ') || 'nothing'}\n` +
          `reused: ${result.reused.length} unchanged\n` +
          `updated files: ${result.written.join(', ') || 'none'}`,
      });
      return 0;
    }
    if (action === 'list') {
      const plan = planPki(spec);
      const rows: string[][] = [];
      for (const name of [...plan.cas.map((c) => c.name), ...plan.certs.map((c) => c.name)]) {
        const pem = await readFile(pkiFiles(dir, name).crt, 'utf8').catch(() => undefined);
        if (!pem) {
          rows.push([name, '(missing)', '', '', '', '']);
          continue;
        }
        let info: ReturnType<typeof inspectCertificate>;
        try {
          info = inspectCertificate(pem);
        } catch {
          rows.push([`${name}.crt`, '(corrupt: klab certs check)', '', '', '', '']);
          continue;
        }
        rows.push([
          `${name}.crt`,
          info.subject,
          info.issuer.replace(/^.*CN=/, 'CN='),
          [...info.dnsNames, ...info.ipAddresses].join(',') || '-',
          info.isCa ? 'CA' : info.usages.join('+'),
          info.notAfter.toISOString().slice(0, 10),
        ]);
      }
      io.reporter.emit({
        kind: 'result',
        text: formatTable(['FILE', 'SUBJECT', 'ISSUER', 'SANS', 'USAGES', 'EXPIRES'], rows),
      });
      return 0;
    }
    const findings = await checkPki(spec, dir);
    const lines = findings
      .filter((f) => f.status !== 'ok')
      .map((f) => `${f.status === 'fail' ? 'FAIL' : 'WARN'}  ${f.name}: ${f.detail}`);
    const failed = findings.filter((f) => f.status === 'fail');
    lines.push(
      `${findings.length - failed.length} of ${findings.length} certificates and kubeconfigs are fine.`,
    );
    io.reporter.emit({ kind: 'result', text: lines.join('\n') });
    if (failed.length > 0) {
      throw new KlabError(
        'KLAB_CERTS_INVALID',
        `${failed.length} certificate problem(s) in ${dir}`,
        {
          hint: 'Run "klab certs generate" to re-issue what is out of date.',
        },
      );
    }
    return 0;
  },
};
