/**
 * The lab PKI, checked independently: openssl verifies every chain and purpose and
 * compares key moduli; node:crypto reads back subjects, SANs and usages.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFile, cp, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { validateSpec } from '../../../src/model/spec-file.js';
import { checkPki } from '../../../src/pki/check.js';
import {
  generatePki,
  type PkiResult,
  pkiFiles,
  readBootstrapTokens,
} from '../../../src/pki/generate.js';
import { inspectCertificate } from '../../../src/pki/inspect.js';
import { renderEncryptionConfig } from '../../../src/pki/secrets.js';
import { sequentialSerials } from '../../../src/pki/x509.js';
import { expectGolden } from '../../helpers/golden.js';
import { defaultSpec } from '../../helpers/specs.js';

const CLOCK = Date.parse('2026-06-01T12:00:00Z');
const spec = defaultSpec('klab');
let dir: string;
let first: PkiResult;

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function generateInto(target: string, s = spec, renew: string[] = []) {
  return generatePki(s, { dir: target, now: () => CLOCK, serials: sequentialSerials(1), renew });
}

async function manifest(target: string, result: PkiResult) {
  const names = [...result.plan.cas.map((c) => c.name), ...result.plan.certs.map((c) => c.name)];
  return Promise.all(
    names.map(async (name) => {
      const info = inspectCertificate(await readFile(pkiFiles(target, name).crt, 'utf8'));
      return {
        name,
        subject: info.subject,
        issuer: info.issuer,
        serial: info.serial,
        dnsNames: info.dnsNames,
        ipAddresses: info.ipAddresses,
        usages: info.usages,
        ca: info.isCa,
        notBefore: info.notBefore.toISOString(),
        notAfter: info.notAfter.toISOString(),
      };
    }),
  );
}

let pristine: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'klab-pki-'));
  first = await generateInto(dir);
  pristine = await mkdtemp(path.join(os.tmpdir(), 'klab-pki-'));
  await cp(dir, pristine, { recursive: true });
});

/**
 * A new directory holding the default lab's PKI as its first generation left it: what
 * `generateInto` of a new directory gives, without issuing some 20 RSA keys again (minutes
 * for a test file on a host that compiles Go beside the unit tier).
 */
async function generatedCopy(): Promise<string> {
  const target = await mkdtemp(path.join(os.tmpdir(), 'klab-pki-'));
  await cp(pristine, target, { recursive: true });
  return target;
}

describe('the default lab PKI', () => {
  it('issues every certificate the lab needs', () => {
    expect(first.issued).toEqual([
      'ca',
      'etcd-ca',
      'front-proxy-ca',
      'etcd-server-master',
      'etcd-peer-master',
      'etcd-server-node1',
      'etcd-peer-node1',
      'etcd-server-node2',
      'etcd-peer-node2',
      'etcd-client-apiserver',
      'etcd-client-flanneld',
      'etcd-client-admin',
      'apiserver',
      'apiserver-kubelet-client',
      'admin',
      'kube-controller-manager',
      'kube-scheduler',
      'kube-proxy',
      'kubelet-node1',
      'kubelet-node2',
      'kubelet-node3',
      'front-proxy-client',
      'sa',
    ]);
  });

  it('passes openssl verify with the right CA and purpose, and every key matches its cert', async () => {
    const attime = String(Math.floor(CLOCK / 1000) + 86400);
    for (const cert of first.plan.certs) {
      const files = pkiFiles(dir, cert.name);
      const caFile = pkiFiles(dir, cert.issuer).crt;
      for (const usage of cert.usages) {
        const purpose = usage === 'server' ? 'sslserver' : 'sslclient';
        const out = openssl([
          'verify',
          '-attime',
          attime,
          '-CAfile',
          caFile,
          '-purpose',
          purpose,
          files.crt,
        ]);
        expect(out.trim(), `${cert.name} ${purpose}`).toBe(`${files.crt}: OK`);
      }
      const certModulus = openssl(['x509', '-noout', '-modulus', '-in', files.crt]);
      const keyModulus = openssl(['rsa', '-noout', '-modulus', '-in', files.key]);
      expect(certModulus, cert.name).toBe(keyModulus);
    }
  });

  it('client-only certificates are refused as servers by openssl', () => {
    const attime = String(Math.floor(CLOCK / 1000) + 86400);
    const files = pkiFiles(dir, 'admin');
    expect(() =>
      openssl([
        'verify',
        '-attime',
        attime,
        '-CAfile',
        pkiFiles(dir, 'ca').crt,
        '-purpose',
        'sslserver',
        files.crt,
      ]),
    ).toThrow();
  });

  it('front-proxy-client is signed by the front-proxy CA, not the lab CA', () => {
    const attime = String(Math.floor(CLOCK / 1000) + 86400);
    expect(() =>
      openssl([
        'verify',
        '-attime',
        attime,
        '-CAfile',
        pkiFiles(dir, 'ca').crt,
        pkiFiles(dir, 'front-proxy-client').crt,
      ]),
    ).toThrow();
  });

  it('etcd has its own CA: its members and its three clients verify against it, nothing else does', () => {
    const attime = String(Math.floor(CLOCK / 1000) + 86400);
    const verify = (ca: string, cert: string) => () =>
      openssl([
        'verify',
        '-attime',
        attime,
        '-CAfile',
        pkiFiles(dir, ca).crt,
        pkiFiles(dir, cert).crt,
      ]);
    const etcdSide = first.plan.certs
      .filter((cert) => cert.issuer === 'etcd-ca')
      .map((c) => c.name);
    expect(etcdSide.sort()).toEqual(
      [
        'etcd-client-admin',
        'etcd-client-apiserver',
        'etcd-client-flanneld',
        'etcd-peer-master',
        'etcd-peer-node1',
        'etcd-peer-node2',
        'etcd-server-master',
        'etcd-server-node1',
        'etcd-server-node2',
      ].sort(),
    );
    for (const name of etcdSide) {
      expect(verify('etcd-ca', name)).not.toThrow();
      expect(verify('ca', name), `${name} must not verify against the lab CA`).toThrow();
    }
    for (const name of ['kube-proxy', 'admin', 'kubelet-node1', 'apiserver-kubelet-client']) {
      expect(verify('etcd-ca', name), `${name} must not be trusted by etcd`).toThrow();
    }
  });

  it('has the SANs, usages, CN and O each component needs (read with node:crypto)', async () => {
    const read = async (name: string) =>
      inspectCertificate(await readFile(pkiFiles(dir, name).crt, 'utf8'));
    const apiserver = await read('apiserver');
    expect(apiserver.ipAddresses).toEqual(['10.254.0.1', '192.168.56.10', '127.0.0.1']);
    expect(apiserver.dnsNames).toEqual([
      'kubernetes',
      'kubernetes.default',
      'kubernetes.default.svc',
      'kubernetes.default.svc.cluster.local',
      'master',
    ]);
    expect(apiserver.usages).toEqual(['server']);
    expect(apiserver.ipAddresses.some((ip) => ip.startsWith('192.168.121.'))).toBe(false);

    const etcd = await read('etcd-server-node1');
    expect([etcd.dnsNames, etcd.ipAddresses, etcd.usages]).toEqual([
      ['node1', 'localhost'],
      ['192.168.56.11', '127.0.0.1'],
      ['server', 'client'],
    ]);
    expect((await read('etcd-peer-node2')).ipAddresses).toEqual(['192.168.56.12', '127.0.0.1']);

    expect((await read('admin')).subject).toBe('O=system:masters, CN=admin');
    // No group: RBAC (one binding) gives it the kubelet API, nothing more.
    expect((await read('apiserver-kubelet-client')).subject).toBe(
      'CN=kube-apiserver-kubelet-client',
    );
    expect((await read('kube-controller-manager')).subject).toBe(
      'CN=system:kube-controller-manager',
    );
    expect((await read('kube-scheduler')).subject).toBe('CN=system:kube-scheduler');
    expect((await read('kube-proxy')).subject).toBe('O=system:node-proxier, CN=system:kube-proxy');
    const kubelet = await read('kubelet-node3');
    expect(kubelet.subject).toBe('O=system:nodes, CN=system:node:node3');
    expect([kubelet.dnsNames, kubelet.ipAddresses, kubelet.usages]).toEqual([
      ['node3'],
      ['192.168.56.13'],
      ['server', 'client'],
    ]);
    for (const name of [
      'etcd-client-apiserver',
      'etcd-client-flanneld',
      'etcd-client-admin',
      'front-proxy-client',
    ]) {
      expect((await read(name)).usages, name).toEqual(['client']);
    }

    const ca = new X509Certificate(await readFile(pkiFiles(dir, 'ca').crt, 'utf8'));
    expect(ca.ca).toBe(true);
    expect(ca.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(new X509Certificate(await readFile(pkiFiles(dir, 'apiserver').crt, 'utf8')).ca).toBe(
      false,
    );
  });

  it('uses SHA-256 signatures and deliberate lifetimes (CA 10 years, components 3 years)', () => {
    const text = openssl(['x509', '-noout', '-text', '-in', pkiFiles(dir, 'apiserver').crt]);
    expect(text).toContain('Signature Algorithm: sha256WithRSAEncryption');
    const ca = inspectCertificate(openssl(['x509', '-in', pkiFiles(dir, 'ca').crt]));
    expect(ca.notAfter.toISOString()).toBe('2036-05-29T12:00:00.000Z');
  });

  it('matches the golden manifest of subjects, SANs, usages, serials and dates', async () => {
    expectGolden(
      'pki-default-lab.json',
      `${JSON.stringify(await manifest(dir, first), null, 2)}\n`,
    );
  });

  it('is deterministic given the clock and serial source', async () => {
    const other = await mkdtemp(path.join(os.tmpdir(), 'klab-pki-'));
    const again = await generateInto(other);
    expect(await manifest(other, again)).toEqual(await manifest(dir, first));
  });

  it('writes kubeconfigs that parse and embed the right CA, cert, key or token', async () => {
    const caPem = await readFile(pkiFiles(dir, 'ca').crt, 'utf8');
    const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
    const load = async (name: string) =>
      YAML.parse(await readFile(path.join(dir, 'kubeconfigs', `${name}.kubeconfig`), 'utf8'));
    for (const kc of first.plan.kubeconfigs) {
      const doc = await load(kc.name);
      expect(doc.kind).toBe('Config');
      expect(doc.clusters[0].cluster.server).toBe('https://192.168.56.10:6443');
      expect(decode(doc.clusters[0].cluster['certificate-authority-data'])).toBe(caPem);
      expect(doc.users[0].name).toBe(kc.user);
      const user = doc.users[0].user;
      if ('cert' in kc.auth) {
        const files = pkiFiles(dir, kc.auth.cert);
        expect(decode(user['client-certificate-data'])).toBe(await readFile(files.crt, 'utf8'));
        expect(decode(user['client-key-data'])).toBe(await readFile(files.key, 'utf8'));
      } else {
        expect(user.token).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
      }
    }
    const tokens = JSON.parse(await readFile(path.join(dir, 'bootstrap-tokens.json'), 'utf8'));
    expect(tokens.map((t: { node: string }) => t.node)).toEqual(['node1', 'node2', 'node3']);
    const boot = await load('bootstrap-node2');
    expect(boot.users[0].user.token).toBe(`${tokens[1].id}.${tokens[1].secret}`);
  });

  it('has a separate service-account key pair and an aescbc encryption config', async () => {
    const saPub = await readFile(path.join(dir, 'sa.pub'), 'utf8');
    expect(saPub).toContain('BEGIN PUBLIC KEY');
    const caPub = new X509Certificate(
      await readFile(pkiFiles(dir, 'ca').crt, 'utf8'),
    ).publicKey.export({ type: 'spki', format: 'pem' });
    expect(saPub).not.toBe(caPub);
    const enc = YAML.parse(await readFile(path.join(dir, 'encryption-config.yaml'), 'utf8'));
    expect(enc.kind).toBe('EncryptionConfig');
    expect(Buffer.from(enc.resources[0].providers[0].aescbc.keys[0].secret, 'base64')).toHaveLength(
      32,
    );
    expect(YAML.parse(renderEncryptionConfig('debian', 'k')).apiVersion).toBe(
      'apiserver.config.k8s.io/v1',
    );
  });

  it('keeps the directory 0700 and private keys, tokens and kubeconfigs 0600', async () => {
    const mode = async (file: string) => (await stat(file)).mode & 0o777;
    expect(await mode(dir)).toBe(0o700);
    expect(await mode(path.join(dir, 'kubeconfigs'))).toBe(0o700);
    for (const name of ['ca', 'apiserver', 'kubelet-node1']) {
      expect(await mode(pkiFiles(dir, name).key), name).toBe(0o600);
      expect(await mode(pkiFiles(dir, name).crt), name).toBe(0o644);
    }
    for (const file of [
      'sa.key',
      'bootstrap-tokens.json',
      'encryption-config.yaml',
      'kubeconfigs/admin.kubeconfig',
    ]) {
      expect(await mode(path.join(dir, file)), file).toBe(0o600);
    }
  });

  it('passes klab certs check', async () => {
    const findings = await checkPki(spec, dir, CLOCK + 86400_000);
    expect(findings.filter((f) => f.status !== 'ok')).toEqual([]);
    expect(findings).toHaveLength(3 + 19 + 10); // CAs, component certificates, kubeconfigs
  });
});

describe('re-running generation', () => {
  it('reuses everything on a second run and leaves the files untouched', async () => {
    const before = (await stat(pkiFiles(dir, 'apiserver').crt)).mtimeMs;
    const again = await generateInto(dir);
    expect(again.issued).toEqual([]);
    expect(again.written).toEqual([]);
    expect(again.reused).toHaveLength(23);
    expect((await stat(pkiFiles(dir, 'apiserver').crt)).mtimeMs).toBe(before);
  });

  it('re-issues exactly the certificates a changed node IP affects', async () => {
    const copy = await generatedCopy();
    const moved = validateSpec(
      {
        nodes: [
          { name: 'master', role: 'master' },
          { name: 'node1' },
          { name: 'node2', ip: '192.168.56.42' },
          { name: 'node3' },
        ],
      },
      'klab',
      'test',
    );
    const result = await generateInto(copy, moved);
    expect(result.issued).toEqual(['etcd-server-node2', 'etcd-peer-node2', 'kubelet-node2']);
    expect(result.written).toEqual(['kubeconfigs/kubelet-node2.kubeconfig']);
    expect(
      inspectCertificate(await readFile(pkiFiles(copy, 'kubelet-node2').crt, 'utf8')).ipAddresses,
    ).toEqual(['192.168.56.42']);
    // check against the old spec now reports the mismatch.
    const findings = await checkPki(spec, copy, CLOCK);
    expect(findings.filter((f) => f.status === 'fail').map((f) => f.name)).toEqual([
      'etcd-server-node2',
      'etcd-peer-node2',
      'kubelet-node2',
    ]);
  });

  it('renew NAME re-issues only that certificate; a new node gets its cert, kubeconfigs and token', async () => {
    const copy = await generatedCopy();
    expect((await generateInto(copy, spec, ['kube-proxy'])).issued).toEqual(['kube-proxy']);
    const bigger = validateSpec(
      {
        nodes: [
          { name: 'master', role: 'master' },
          { name: 'node1' },
          { name: 'node2' },
          { name: 'node3' },
          { name: 'node4' },
        ],
      },
      'klab',
      'test',
    );
    const result = await generateInto(copy, bigger);
    expect(result.issued).toEqual(['kubelet-node4']);
    expect(result.written).toEqual([
      'bootstrap-tokens.json',
      'kubeconfigs/kubelet-node4.kubeconfig',
      'kubeconfigs/bootstrap-node4.kubeconfig',
    ]);
  });

  it('re-issues a certificate whose file was tampered with, and check catches it first', async () => {
    const copy = await generatedCopy();
    await copyFile(pkiFiles(copy, 'kubelet-node2').crt, pkiFiles(copy, 'kubelet-node1').crt);
    const findings = await checkPki(spec, copy, CLOCK);
    const bad = findings.find((f) => f.name === 'kubelet-node1');
    expect(bad?.status).toBe('fail');
    expect(bad?.detail).toMatch(/key does not match/);
    expect((await generateInto(copy)).issued).toEqual(['kubelet-node1']);
  });

  it('warns 30 days before expiry and fails once expired', async () => {
    const threeYears = 1095 * 86400_000;
    const soon = await checkPki(spec, dir, CLOCK + threeYears - 10 * 86400_000);
    expect(soon.find((f) => f.name === 'apiserver')).toMatchObject({ status: 'warn' });
    const late = await checkPki(spec, dir, CLOCK + threeYears + 86400_000);
    expect(late.find((f) => f.name === 'apiserver')).toMatchObject({ status: 'fail' });
  });

  it('reports a corrupt certificate as a finding instead of crashing', async () => {
    const copy = await generatedCopy();
    await writeFile(
      pkiFiles(copy, 'apiserver').crt,
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
    );
    await writeFile(pkiFiles(copy, 'ca').crt, 'garbage');
    const findings = await checkPki(spec, copy, CLOCK);
    expect(findings.find((f) => f.name === 'apiserver')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/^cannot be parsed as a certificate/),
    });
    expect(findings.find((f) => f.name === 'ca')).toMatchObject({ status: 'fail' });
  });

  it('fails a kubeconfig whose embedded client key does not match its certificate', async () => {
    const copy = await generatedCopy();
    const file = path.join(copy, 'kubeconfigs', 'admin.kubeconfig');
    const doc = YAML.parse(await readFile(file, 'utf8')) as {
      users: { user: Record<string, string> }[];
    };
    const other = await readFile(pkiFiles(copy, 'kube-proxy').key, 'utf8');
    const user = doc.users[0]?.user;
    if (!user) throw new Error('no user');
    user['client-key-data'] = Buffer.from(other).toString('base64');
    await writeFile(file, YAML.stringify(doc));
    const findings = await checkPki(spec, copy, CLOCK);
    expect(findings.find((f) => f.name === 'kubeconfigs/admin')).toMatchObject({
      status: 'fail',
      detail: 'its client key does not match its client certificate: run klab certs generate',
    });
  });

  it('refuses a corrupt manifest, tokens file or encryption config instead of re-issuing around it', async () => {
    const copy = await generatedCopy();
    const caBefore = await readFile(pkiFiles(copy, 'ca').crt, 'utf8');
    await writeFile(path.join(copy, 'manifest.json'), '{"inputs": ');
    await expect(generateInto(copy)).rejects.toMatchObject({
      code: 'KLAB_CERTS_INVALID',
      message: expect.stringMatching(/manifest\.json is corrupt/),
    });
    expect(await readFile(pkiFiles(copy, 'ca').crt, 'utf8')).toBe(caBefore);

    const fresh = await generatedCopy();
    await writeFile(
      path.join(fresh, 'bootstrap-tokens.json'),
      JSON.stringify([{ id: 'ABC', secret: 'x; rm -rf /', node: 'node1' }]),
    );
    await expect(generateInto(fresh)).rejects.toMatchObject({
      code: 'KLAB_CERTS_INVALID',
      message: expect.stringMatching(
        /bootstrap-tokens\.json is corrupt: entry 0 is not a bootstrap token/,
      ),
    });
    // The one reader every other part uses checks the same way; no file yet is no token.
    await expect(readBootstrapTokens(fresh)).rejects.toMatchObject({ code: 'KLAB_CERTS_INVALID' });
    expect(await readBootstrapTokens(await mkdtemp(path.join(os.tmpdir(), 'klab-pki-')))).toEqual(
      [],
    );

    const third = await generatedCopy();
    await writeFile(path.join(third, 'encryption-config.yaml'), 'kind: [');
    await expect(generateInto(third)).rejects.toMatchObject({
      message: expect.stringMatching(/encryption-config\.yaml is corrupt: it holds no aescbc key/),
    });
  });
});
