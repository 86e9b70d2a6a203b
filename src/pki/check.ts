/** `klab certs check`: chain, key match, SANs against the spec, expiry. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import type { LabSpec } from '../model/spec.js';
import { pkiFiles } from './generate.js';
import { type CertInfo, inspectCertificate, keyMatchesCertificate, signedBy } from './inspect.js';
import { planPki } from './plan.js';

export interface CertFinding {
  name: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
}

export const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 86_400_000;

const read = (file: string) => readFile(file, 'utf8').catch(() => undefined);

/** A certificate that does not parse is a finding, never a crash. */
function tryInspect(pem: string): CertInfo | string {
  try {
    return inspectCertificate(pem);
  } catch (error) {
    return `cannot be parsed as a certificate (${(error as Error).message}): run klab certs generate`;
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return (
    a.length === b.length && [...a].sort().every((value, index) => value === [...b].sort()[index])
  );
}

function expiry(name: string, notAfter: Date, now: number): CertFinding | undefined {
  const days = Math.floor((notAfter.getTime() - now) / DAY_MS);
  if (notAfter.getTime() <= now)
    return { name, status: 'fail', detail: `expired on ${notAfter.toISOString()}` };
  if (days < EXPIRY_WARNING_DAYS) {
    return {
      name,
      status: 'warn',
      detail: `expires in ${days} days (${notAfter.toISOString()}): klab certs renew ${name}`,
    };
  }
  return undefined;
}

const decode = (data: string | undefined) => Buffer.from(data ?? '', 'base64').toString('utf8');

/** What is wrong with a kubeconfig's credentials, if anything. */
function credentialProblem(
  user:
    | { 'client-certificate-data'?: string; 'client-key-data'?: string; token?: string }
    | undefined,
  caPem: string | undefined,
): string | undefined {
  if (!user) return 'has no user credentials';
  if (user.token !== undefined) {
    return /^[a-z0-9]{6}\.[a-z0-9]{16}$/.test(user.token)
      ? undefined
      : 'its bootstrap token is malformed';
  }
  const cert = decode(user['client-certificate-data']);
  const key = decode(user['client-key-data']);
  if (!cert || !key) return 'has neither a client certificate and key nor a token';
  if (!keyMatchesCertificate(cert, key))
    return 'its client key does not match its client certificate';
  if (!caPem || !signedBy(cert, caPem)) return 'its client certificate is not signed by the lab CA';
  return undefined;
}

export async function checkPki(
  spec: LabSpec,
  dir: string,
  now: number = Date.now(),
): Promise<CertFinding[]> {
  const plan = planPki(spec);
  const findings: CertFinding[] = [];
  const caPems = new Map<string, string>();

  for (const ca of plan.cas) {
    const files = pkiFiles(dir, ca.name);
    const [certPem, keyPem] = [await read(files.crt), await read(files.key)];
    if (!certPem || !keyPem) {
      findings.push({ name: ca.name, status: 'fail', detail: 'missing: run klab certs generate' });
      continue;
    }
    const info = tryInspect(certPem);
    if (typeof info === 'string') {
      findings.push({ name: ca.name, status: 'fail', detail: info });
      continue;
    }
    caPems.set(ca.name, certPem);
    const problems: string[] = [];
    if (!info.isCa) problems.push('not a CA certificate');
    if (!signedBy(certPem, certPem)) problems.push('not self-signed');
    if (!keyMatchesCertificate(certPem, keyPem)) problems.push('key does not match');
    const exp = expiry(ca.name, info.notAfter, now);
    findings.push(
      problems.length > 0
        ? { name: ca.name, status: 'fail', detail: problems.join('; ') }
        : (exp ?? {
            name: ca.name,
            status: 'ok',
            detail: `valid until ${info.notAfter.toISOString()}`,
          }),
    );
  }

  for (const cert of plan.certs) {
    const files = pkiFiles(dir, cert.name);
    const [certPem, keyPem] = [await read(files.crt), await read(files.key)];
    if (!certPem || !keyPem) {
      findings.push({
        name: cert.name,
        status: 'fail',
        detail: 'missing: run klab certs generate',
      });
      continue;
    }
    const info = tryInspect(certPem);
    if (typeof info === 'string') {
      findings.push({ name: cert.name, status: 'fail', detail: info });
      continue;
    }
    const problems: string[] = [];
    const issuer = caPems.get(cert.issuer);
    if (!issuer || !signedBy(certPem, issuer)) problems.push(`not signed by ${cert.issuer}`);
    if (!keyMatchesCertificate(certPem, keyPem))
      problems.push('key does not match the certificate');
    if (!info.subject.includes(`CN=${cert.commonName}`))
      problems.push(`CN is not ${cert.commonName}`);
    if (!sameSet(info.dnsNames, cert.dnsNames) || !sameSet(info.ipAddresses, cert.ipAddresses)) {
      problems.push(
        `SANs ${[...info.dnsNames, ...info.ipAddresses].join(',') || '(none)'} do not match the lab ` +
          `(${[...cert.dnsNames, ...cert.ipAddresses].join(',') || 'none'}): run klab certs generate`,
      );
    }
    for (const usage of cert.usages)
      if (!info.usages.includes(usage)) problems.push(`not valid for ${usage} auth`);
    const exp = expiry(cert.name, info.notAfter, now);
    findings.push(
      problems.length > 0
        ? { name: cert.name, status: 'fail', detail: problems.join('; ') }
        : (exp ?? {
            name: cert.name,
            status: 'ok',
            detail: `valid until ${info.notAfter.toISOString()}`,
          }),
    );
  }

  const caPem = caPems.get('ca');
  for (const kc of plan.kubeconfigs) {
    const text = await read(path.join(dir, 'kubeconfigs', `${kc.name}.kubeconfig`));
    const name = `kubeconfigs/${kc.name}`;
    if (!text) {
      findings.push({ name, status: 'fail', detail: 'missing: run klab certs generate' });
      continue;
    }
    try {
      const doc = YAML.parse(text) as {
        clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
        users?: {
          user?: { 'client-certificate-data'?: string; 'client-key-data'?: string; token?: string };
        }[];
      };
      const cluster = doc.clusters[0]?.cluster;
      const embeddedCa = Buffer.from(
        cluster?.['certificate-authority-data'] ?? '',
        'base64',
      ).toString('utf8');
      if (cluster?.server !== plan.apiserverUrl) {
        findings.push({
          name,
          status: 'fail',
          detail: `server is ${cluster?.server}, the lab's is ${plan.apiserverUrl}`,
        });
      } else if (embeddedCa !== caPem) {
        findings.push({ name, status: 'fail', detail: 'embeds another CA than .klab/pki/ca.crt' });
      } else if (credentialProblem(doc.users?.[0]?.user, caPem)) {
        findings.push({
          name,
          status: 'fail',
          detail: `${credentialProblem(doc.users?.[0]?.user, caPem)}: run klab certs generate`,
        });
      } else {
        findings.push({ name, status: 'ok', detail: `${kc.purpose}` });
      }
    } catch (error) {
      findings.push({
        name,
        status: 'fail',
        detail: `not valid YAML: ${(error as Error).message}`,
      });
    }
  }
  return findings;
}
