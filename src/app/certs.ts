/** klab certs: the lab's own PKI on the host: generate or renew, list, check. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { KlabError } from '../model/errors.js';
import { type EventSink, task } from '../model/events.js';
import { labPaths } from '../model/lab-paths.js';
import type { LabSpec } from '../model/spec.js';
import { loadSpec } from '../model/spec-file.js';
import { loadState } from '../model/state.js';
import { type CertFinding, checkPki } from '../pki/check.js';
import { generatePki, pkiFiles } from '../pki/generate.js';
import { inspectCertificate } from '../pki/inspect.js';
import { planPki } from '../pki/plan.js';

export interface PkiTarget {
  spec: LabSpec;
  /** Where the PKI lives: <lab>/.klab/pki unless given. */
  dir: string;
}

/** The spec with the stack the lab really runs (after a fallback): it decides file formats. */
export async function openPki(labDir: string, pkiDir?: string): Promise<PkiTarget> {
  const paths = labPaths(labDir);
  const loaded = await loadSpec(paths.dir);
  const state = await loadState(paths.stateFile);
  return {
    spec: { ...loaded, stack: state.stack ?? loaded.stack },
    dir: pkiDir ? path.resolve(pkiDir) : paths.pkiDir,
  };
}

/** Generate what is missing or out of date; renew: re-issue NAME, "ca" or "all". */
export async function generateCerts(target: PkiTarget, sink: EventSink, renew: string[] = []) {
  const known = new Set([
    'all',
    'ca',
    'etcd-ca',
    'front-proxy-ca',
    'sa',
    ...planPki(target.spec).certs.map((c) => c.name),
  ]);
  for (const name of renew) {
    if (!known.has(name)) {
      throw new KlabError('KLAB_USAGE', `there is no certificate "${name}"`, {
        hint: 'See the names with "klab certs list".',
      });
    }
  }
  return task(
    sink,
    `Generate the lab PKI in ${target.dir}`,
    () => generatePki(target.spec, { dir: target.dir, renew }),
    (r) => `${r.issued.length} issued, ${r.reused.length} reused`,
  );
}

export interface CertItem {
  name: string;
  file: string;
  state: 'ok' | 'missing' | 'corrupt';
  subject?: string;
  issuer?: string;
  sans?: string[];
  isCa?: boolean;
  usages?: string[];
  notAfter?: string;
}

/** Every CA and certificate the plan names, as it is on disk. */
export async function listCerts(target: PkiTarget): Promise<CertItem[]> {
  const plan = planPki(target.spec);
  const items: CertItem[] = [];
  for (const name of [...plan.cas.map((c) => c.name), ...plan.certs.map((c) => c.name)]) {
    const file = pkiFiles(target.dir, name).crt;
    const pem = await readFile(file, 'utf8').catch(() => undefined);
    if (!pem) {
      items.push({ name, file, state: 'missing' });
      continue;
    }
    try {
      const info = inspectCertificate(pem);
      items.push({
        name,
        file,
        state: 'ok',
        subject: info.subject,
        issuer: info.issuer,
        sans: [...info.dnsNames, ...info.ipAddresses],
        isCa: info.isCa,
        usages: info.usages,
        notAfter: info.notAfter.toISOString(),
      });
    } catch {
      items.push({ name, file, state: 'corrupt' });
    }
  }
  return items;
}

export async function checkCerts(target: PkiTarget): Promise<CertFinding[]> {
  return checkPki(target.spec, target.dir);
}
