/** Reading certificates back with node:crypto, for `certs list` and `certs check`. */
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';

export interface CertInfo {
  subject: string;
  issuer: string;
  serial: string;
  dnsNames: string[];
  ipAddresses: string[];
  /** serverAuth / clientAuth (from the extended key usage). */
  usages: string[];
  isCa: boolean;
  notBefore: Date;
  notAfter: Date;
  fingerprint256: string;
}

const EKU: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'server',
  '1.3.6.1.5.5.7.3.2': 'client',
};

export function parseSubjectAltName(text: string | undefined): { dns: string[]; ips: string[] } {
  const dns: string[] = [];
  const ips: string[] = [];
  for (const part of (text ?? '').split(', ')) {
    if (part.startsWith('DNS:')) dns.push(part.slice(4));
    else if (part.startsWith('IP Address:')) ips.push(part.slice('IP Address:'.length));
  }
  return { dns, ips };
}

export function inspectCertificate(pem: string): CertInfo {
  const cert = new X509Certificate(pem);
  const san = parseSubjectAltName(cert.subjectAltName);
  return {
    subject: cert.subject.split('\n').join(', '),
    issuer: cert.issuer.split('\n').join(', '),
    serial: cert.serialNumber,
    dnsNames: san.dns,
    ipAddresses: san.ips,
    usages: (cert.keyUsage ?? []).map((oid) => EKU[oid] ?? oid),
    isCa: cert.ca,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    fingerprint256: cert.fingerprint256,
  };
}

export function keyMatchesCertificate(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

export function signedBy(certPem: string, caPem: string): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    return (
      cert.checkIssued(ca) &&
      cert.verify(createPublicKey(ca.publicKey.export({ type: 'spki', format: 'pem' })))
    );
  } catch {
    return false;
  }
}
