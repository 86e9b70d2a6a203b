/**
 * Certificate creation with node-forge (RSA 2048, SHA-256). Pure apart from key
 * generation: time and serial numbers are injected, so output is reproducible in tests.
 */
import { randomBytes } from 'node:crypto';
import forge from 'node-forge';
import type { CertPlan, Usage } from './plan.js';

export interface SerialSource {
  /** A positive serial number as hex (no leading 00 needed). */
  next(): string;
}

export const randomSerials: SerialSource = {
  next() {
    const bytes = randomBytes(16);
    bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive
    if (bytes[0] === 0) bytes[0] = 1;
    return bytes.toString('hex');
  },
};

export function sequentialSerials(start = 1): SerialSource {
  let next = start;
  return {
    next() {
      const hex = (next++).toString(16);
      return hex.length % 2 === 0 ? hex : `0${hex}`;
    },
  };
}

export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

/** Forge delegates RSA generation to node:crypto when it can (about 0.1 s per key). */
export function generateKeyPair(): KeyPairPem {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  return {
    privateKeyPem: forge.pki.privateKeyToPem(keys.privateKey),
    publicKeyPem: forge.pki.publicKeyToPem(keys.publicKey),
  };
}

export interface Validity {
  /** Milliseconds since the epoch (the injected clock). */
  now: number;
  days: number;
  serial: string;
}

/** Backdated a little: a VM's clock can lag the host's (after a snapshot revert, say). */
const BACKDATE_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

function applyValidity(cert: forge.pki.Certificate, validity: Validity): void {
  cert.serialNumber = validity.serial;
  cert.validity.notBefore = new Date(validity.now - BACKDATE_MS);
  cert.validity.notAfter = new Date(validity.now + validity.days * DAY_MS);
}

function subject(
  commonName: string,
  organizations: readonly string[],
): forge.pki.CertificateField[] {
  return [
    ...organizations.map((value) => ({ shortName: 'O', value })),
    { shortName: 'CN', value: commonName },
  ];
}

export function createCaCertificate(
  keys: KeyPairPem,
  commonName: string,
  validity: Validity,
): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  applyValidity(cert, validity);
  const attrs = subject(commonName, ['klab']);
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keys.privateKeyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

export interface Issuer {
  certPem: string;
  privateKeyPem: string;
}

function extKeyUsage(usages: readonly Usage[]) {
  return {
    name: 'extKeyUsage',
    serverAuth: usages.includes('server'),
    clientAuth: usages.includes('client'),
  };
}

export function issueCertificate(
  plan: Pick<CertPlan, 'commonName' | 'organizations' | 'dnsNames' | 'ipAddresses' | 'usages'>,
  publicKeyPem: string,
  issuer: Issuer,
  validity: Validity,
): string {
  const caCert = forge.pki.certificateFromPem(issuer.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  applyValidity(cert, validity);
  cert.setSubject(subject(plan.commonName, plan.organizations));
  cert.setIssuer(caCert.subject.attributes);
  const altNames = [
    ...plan.dnsNames.map((value) => ({ type: 2, value })),
    ...plan.ipAddresses.map((ip) => ({ type: 7, ip })),
  ];
  const caKeyId = caCert.generateSubjectKeyIdentifier().getBytes();
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    extKeyUsage(plan.usages),
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caKeyId },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(issuer.privateKeyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}
