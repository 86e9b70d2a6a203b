/**
 * The certificates lesson's setup and check: kube-apiserver's serving certificate and key are
 * taken off the master, and the learner issues them again from the lab CA by hand. The check
 * reads the files (the control plane does not run yet at that checkpoint) and judges the
 * result exactly: signed by the lab CA, valid now, a server certificate, every name and
 * address a client dials among its SANs, its key the pair of the certificate, readable by
 * root alone.
 */

import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { putFiles } from '../../provision/lib/guest.js';
import { GUEST } from '../model/guest-paths.js';
import { firstMaster } from '../model/topology.js';
import { planPki } from '../pki/plan.js';
import type { Fault } from './fault.js';

export const APISERVER_CERT = `${GUEST.pki}/apiserver.crt`;
export const APISERVER_KEY = `${GUEST.pki}/apiserver.key`;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

/** What a learner-made apiserver certificate must have: the names klab's own one has. */
export interface WantedSans {
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
}

/** The SANs of a certificate as node:crypto prints them ("DNS:a, IP Address:1.2.3.4"). */
export function parseSans(subjectAltName: string | undefined): { dns: string[]; ips: string[] } {
  const entries = (subjectAltName ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  return {
    dns: entries.filter((e) => e.startsWith('DNS:')).map((e) => e.slice(4).toLowerCase()),
    ips: entries.filter((e) => e.startsWith('IP Address:')).map((e) => e.slice(11)),
  };
}

/**
 * What is wrong with the certificate and key, each with what to do (empty: right).
 * `keyPublicPem` is the public half of the key file (openssl pkey -pubout), `keyMode` its
 * octal mode (stat -c %a).
 */
export function apiserverCertProblems(input: {
  certPem: string;
  caPem: string;
  wanted: WantedSans;
  keyPublicPem: string;
  keyMode: string;
  now: Date;
}): string[] {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(input.certPem);
  } catch {
    return [`${APISERVER_CERT} is not a PEM certificate`];
  }
  const problems: string[] = [];
  const ca = new X509Certificate(input.caPem);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    problems.push(
      `${APISERVER_CERT} is not signed by the lab CA: sign it with ${GUEST.pki}/ca.crt and ca.key (openssl x509 -req -CA ... -CAkey ...)`,
    );
  }
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (from > input.now || to <= input.now) {
    problems.push(
      `${APISERVER_CERT} is not valid now (${cert.validFrom} to ${cert.validTo}): check the VM's clock and -days`,
    );
  }
  if (!(cert.keyUsage ?? []).includes(SERVER_AUTH)) {
    problems.push(
      `${APISERVER_CERT} is not a server certificate: add extendedKeyUsage=serverAuth to its extensions`,
    );
  }
  const sans = parseSans(cert.subjectAltName);
  const missing = [
    ...input.wanted.dnsNames.filter((name) => !sans.dns.includes(name.toLowerCase())),
    ...input.wanted.ipAddresses.filter((ip) => !sans.ips.includes(ip)),
  ];
  if (missing.length > 0) {
    problems.push(
      `${APISERVER_CERT} does not name ${missing.join(', ')} in its subjectAltName: a client that dials a name or address the certificate lacks refuses it`,
    );
  }
  const certPublic = cert.publicKey.export({ type: 'spki', format: 'pem' }).toString().trim();
  if (certPublic !== input.keyPublicPem.trim()) {
    problems.push(
      `${APISERVER_KEY} is not the key of ${APISERVER_CERT}: issue the certificate from a request made with this key`,
    );
  }
  // Group or others may read it: the last two octal digits are not 0.
  if (!/^[0-7]?[0-7]00$/.test(input.keyMode.trim())) {
    problems.push(
      `${APISERVER_KEY} can be read by others (mode ${input.keyMode.trim()}): sudo chmod 600 ${APISERVER_KEY}`,
    );
  }
  return problems;
}

export const apiserverCertRemoved: Fault = {
  id: 'apiserver-cert-removed',
  async inject(ctx) {
    const master = firstMaster(ctx.spec);
    await ctx.host(master.name).run(['rm', '-f', APISERVER_CERT, APISERVER_KEY], { sudo: true });
  },
  async problems(ctx) {
    const master = firstMaster(ctx.spec);
    const host = ctx.host(master.name);
    const read = await host.run(
      [
        'sh',
        '-c',
        `test -s ${APISERVER_CERT} && test -s ${APISERVER_KEY} && cat ${APISERVER_CERT} && echo ===== && openssl pkey -in ${APISERVER_KEY} -pubout && echo ===== && stat -c %a ${APISERVER_KEY}`,
      ],
      { sudo: true, allowFailure: true },
    );
    if (read.exitCode !== 0) {
      return [
        `${master.name}: ${APISERVER_CERT} and ${APISERVER_KEY} must both exist, the key readable by openssl (${read.stderr.trim() || 'one is missing or empty'})`,
      ];
    }
    const [certPem = '', keyPublicPem = '', keyMode = ''] = read.stdout.split('=====\n');
    const plan = planPki(ctx.spec).certs.find((cert) => cert.name === 'apiserver');
    if (!plan) throw new Error('the PKI plan has no apiserver certificate');
    return apiserverCertProblems({
      certPem,
      keyPublicPem,
      keyMode,
      caPem: await readFile(path.join(ctx.pkiDir, 'ca.crt'), 'utf8'),
      wanted: plan,
      now: new Date(),
    }).map((problem) => `${master.name}: ${problem}`);
  },
  async repair(ctx) {
    // klab's own pair, with the modes the certs step gives them.
    const master = firstMaster(ctx.spec);
    const read = (name: string) => readFile(path.join(ctx.pkiDir, name), 'utf8');
    await putFiles(ctx.host(master.name), [
      { path: APISERVER_CERT, content: await read('apiserver.crt'), mode: 0o644 },
      { path: APISERVER_KEY, content: await read('apiserver.key'), mode: 0o600 },
    ]);
  },
};
