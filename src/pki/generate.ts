/**
 * The lab's PKI under .klab/pki: generated from the spec, idempotent. An existing, valid,
 * matching file is reused; a spec change re-issues exactly the certificates it affects.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { KlabError } from '../model/errors.js';
import { readText, writeAtomic, writeIfChanged } from '../model/files.js';
import { sha256 } from '../model/hash.js';
import type { LabSpec } from '../model/spec.js';
import { inspectCertificate, keyMatchesCertificate, signedBy } from './inspect.js';
import { renderKubeconfig } from './kubeconfig.js';
import { type CaName, type CertPlan, type PkiPlan, planPki } from './plan.js';
import {
  type BootstrapToken,
  newBootstrapToken,
  newEncryptionKey,
  renderEncryptionConfig,
} from './secrets.js';
import {
  createCaCertificate,
  generateKeyPair,
  type Issuer,
  issueCertificate,
  type KeyPairPem,
  randomSerials,
  type SerialSource,
  type Validity,
} from './x509.js';

export interface PkiOptions {
  dir: string;
  /** Injected clock (ms since the epoch); certificates' validity starts here. */
  now?: () => number;
  serials?: SerialSource;
  /** Certificates to re-issue even if valid: names, or 'all' (every leaf), or 'ca' too. */
  renew?: readonly string[];
}

export interface PkiResult {
  issued: string[];
  reused: string[];
  /** Other files written because their content changed (kubeconfigs, secrets). */
  written: string[];
  plan: PkiPlan;
}

interface Manifest {
  version: 1;
  inputs: Record<string, string>;
}

const MANIFEST = 'manifest.json';

function hash(value: unknown): string {
  return sha256(JSON.stringify(value)).slice(0, 16);
}

function certInputs(plan: CertPlan, days: number, issuerFingerprint: string): string {
  return hash({
    commonName: plan.commonName,
    organizations: plan.organizations,
    dnsNames: plan.dnsNames,
    ipAddresses: plan.ipAddresses,
    usages: plan.usages,
    days,
    issuerFingerprint,
  });
}

export function pkiFiles(dir: string, name: string) {
  return { crt: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
}

export async function generatePki(spec: LabSpec, options: PkiOptions): Promise<PkiResult> {
  const dir = options.dir;
  const now = options.now ?? Date.now;
  const serials = options.serials ?? randomSerials;
  const renew = new Set(options.renew ?? []);
  const plan = planPki(spec);
  const result: PkiResult = { issued: [], reused: [], written: [], plan };

  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  await mkdir(path.join(dir, 'kubeconfigs'), { recursive: true, mode: 0o700 });
  await chmod(path.join(dir, 'kubeconfigs'), 0o700);
  const manifest = parseManifest(await readText(path.join(dir, MANIFEST)), dir);
  const nextInputs: Record<string, string> = {};

  async function validExisting(
    name: string,
    inputs: string,
    issuerPem?: string,
  ): Promise<Issuer | undefined> {
    const files = pkiFiles(dir, name);
    const certPem = await readText(files.crt);
    const keyPem = await readText(files.key);
    if (!certPem || !keyPem || manifest.inputs[name] !== inputs) return undefined;
    if (!keyMatchesCertificate(certPem, keyPem)) return undefined;
    if (!signedBy(certPem, issuerPem ?? certPem)) return undefined;
    if (inspectCertificate(certPem).notAfter.getTime() <= now()) return undefined;
    return { certPem, privateKeyPem: keyPem };
  }

  /** A new key pair and certificate, written with the right permissions. */
  async function issueAndWrite(
    name: string,
    days: number,
    sign: (keys: KeyPairPem, validity: Validity) => string,
  ): Promise<Issuer> {
    const keys = generateKeyPair();
    const certPem = sign(keys, { now: now(), days, serial: serials.next() });
    const files = pkiFiles(dir, name);
    await writeAtomic(files.key, keys.privateKeyPem, 0o600);
    await writeAtomic(files.crt, certPem, 0o644);
    result.issued.push(name);
    return { certPem, privateKeyPem: keys.privateKeyPem };
  }

  const cas = new Map<CaName, Issuer>();
  for (const ca of plan.cas) {
    const inputs = hash({ commonName: ca.commonName });
    const forced = renew.has(ca.name);
    let issuer = forced ? undefined : await validExisting(ca.name, inputs);
    if (issuer) {
      result.reused.push(ca.name);
    } else {
      issuer = await issueAndWrite(ca.name, spec.pki.caDays, (keys, validity) =>
        createCaCertificate(keys, ca.commonName, validity),
      );
    }
    nextInputs[ca.name] = inputs;
    cas.set(ca.name, issuer);
  }

  const leaves = new Map<string, Issuer>();
  for (const cert of plan.certs) {
    const issuer = cas.get(cert.issuer);
    if (!issuer) throw new Error(`no issuer ${cert.issuer}`);
    const inputs = certInputs(
      cert,
      spec.pki.certDays,
      inspectCertificate(issuer.certPem).fingerprint256,
    );
    const forced = renew.has(cert.name) || renew.has('all');
    let existing = forced ? undefined : await validExisting(cert.name, inputs, issuer.certPem);
    if (existing) {
      result.reused.push(cert.name);
    } else {
      existing = await issueAndWrite(cert.name, spec.pki.certDays, (keys, validity) =>
        issueCertificate(cert, keys.publicKeyPem, issuer, validity),
      );
    }
    nextInputs[cert.name] = inputs;
    leaves.set(cert.name, existing);
  }

  // The service-account signing key pair: its own, never the CA's key.
  const saKey = await readText(path.join(dir, 'sa.key'));
  let saValid = false;
  if (saKey) {
    try {
      createPrivateKey(saKey);
      saValid = true;
    } catch {
      saValid = false;
    }
  }
  if (!saValid || renew.has('sa')) {
    const keys = generateKeyPair();
    await writeAtomic(path.join(dir, 'sa.key'), keys.privateKeyPem, 0o600);
    result.issued.push('sa');
  } else {
    result.reused.push('sa');
  }
  const saPub = createPublicKey(createPrivateKey((await readText(path.join(dir, 'sa.key'))) ?? ''))
    .export({ type: 'spki', format: 'pem' })
    .toString();
  if (await writeIfChanged(path.join(dir, 'sa.pub'), saPub, 0o644)) result.written.push('sa.pub');

  // Encryption at rest: keep the key, re-render when the stack's format changes.
  const encFile = path.join(dir, 'encryption-config.yaml');
  const encText = await readText(encFile);
  const existingKey = encText ? extractEncryptionKey(encText) : undefined;
  if (encText && !existingKey) {
    // A new key would leave every Secret already in etcd unreadable: never replace it silently.
    throw corrupt(
      dir,
      'encryption-config.yaml',
      'it holds no aescbc key of 32 bytes',
      'Restore it from a backup; only if the cluster holds no Secrets you need, delete it and run "klab certs generate".',
    );
  }
  const encKey = existingKey ?? newEncryptionKey();
  if (await writeIfChanged(encFile, renderEncryptionConfig(spec.stack, encKey), 0o600)) {
    result.written.push('encryption-config.yaml');
  }

  // One bootstrap token per node; kept while the node exists.
  const tokenFile = path.join(dir, 'bootstrap-tokens.json');
  const oldTokens = parseTokens(await readText(tokenFile), dir);
  const tokens = plan.bootstrapNodes.map(
    (node) => oldTokens.find((token) => token.node === node) ?? newBootstrapToken(node),
  );
  if (await writeIfChanged(tokenFile, `${JSON.stringify(tokens, null, 2)}\n`, 0o600)) {
    result.written.push('bootstrap-tokens.json');
  }

  const ca = cas.get('ca');
  if (!ca) throw new Error('no CA');
  for (const kc of plan.kubeconfigs) {
    let auth: { certPem: string; keyPem: string } | { token: string };
    if ('cert' in kc.auth) {
      const leaf = leaves.get(kc.auth.cert);
      if (!leaf) throw new Error(`kubeconfig ${kc.name}: no certificate ${kc.auth.cert}`);
      auth = { certPem: leaf.certPem, keyPem: leaf.privateKeyPem };
    } else {
      const node = kc.auth.bootstrapTokenFor;
      const token = tokens.find((entry) => entry.node === node);
      if (!token) throw new Error(`kubeconfig ${kc.name}: no bootstrap token for ${node}`);
      auth = { token: `${token.id}.${token.secret}` };
    }
    const text = renderKubeconfig({
      clusterName: `klab-${spec.name}`,
      server: plan.apiserverUrl,
      caPem: ca.certPem,
      user: kc.user,
      auth,
    });
    if (await writeIfChanged(path.join(dir, 'kubeconfigs', `${kc.name}.kubeconfig`), text, 0o600)) {
      result.written.push(`kubeconfigs/${kc.name}.kubeconfig`);
    }
  }

  await writeIfChanged(
    path.join(dir, MANIFEST),
    `${JSON.stringify({ version: 1, inputs: nextInputs } satisfies Manifest, null, 2)}\n`,
    0o644,
  );
  return result;
}

function extractEncryptionKey(text: string): string | undefined {
  try {
    const doc = YAML.parse(text) as {
      resources?: { providers?: { aescbc?: { keys?: { secret?: string }[] } }[] }[];
    };
    const key = doc.resources?.[0]?.providers?.[0]?.aescbc?.keys?.[0]?.secret;
    return typeof key === 'string' && Buffer.from(key, 'base64').length === 32 ? key : undefined;
  } catch {
    return undefined;
  }
}

function corrupt(dir: string, file: string, why: string, hint: string): KlabError {
  return new KlabError('KLAB_CERTS_INVALID', `${path.join(dir, file)} is corrupt: ${why}`, {
    hint,
  });
}

/** JSON from one of the PKI's own files, or KLAB_CERTS_INVALID naming the file. */
function parseJsonFile(text: string, dir: string, file: string, hint: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw corrupt(dir, file, (error as Error).message, hint);
  }
}

/** manifest.json: which inputs each certificate was issued for. Corrupt -> refuse (else every certificate, the CA too, would be re-issued). */
function parseManifest(text: string | undefined, dir: string): Manifest {
  if (text === undefined) return { version: 1, inputs: {} };
  const hint =
    'Restore it, or move it aside to re-issue every certificate including the CA (the VMs then need "klab create" to receive them).';
  const parsed = parseJsonFile(text, dir, MANIFEST, hint);
  const inputs = (parsed as Partial<Manifest> | null)?.inputs;
  if (
    typeof inputs !== 'object' ||
    inputs === null ||
    Object.values(inputs).some((value) => typeof value !== 'string')
  ) {
    throw corrupt(dir, MANIFEST, 'it has no "inputs" map of strings', hint);
  }
  return { version: 1, inputs: inputs as Record<string, string> };
}

const TOKEN_ID = /^[a-z0-9]{6}$/;
const TOKEN_SECRET = /^[a-z0-9]{16}$/;

/**
 * The bootstrap tokens klab issued, one per node, from the lab's PKI directory (none yet:
 * an empty list). The one reader of bootstrap-tokens.json: every entry is checked.
 */
export async function readBootstrapTokens(dir: string): Promise<BootstrapToken[]> {
  return parseTokens(await readText(path.join(dir, 'bootstrap-tokens.json')), dir);
}

/** bootstrap-tokens.json, each entry checked: a malformed token must never reach a kubeconfig. */
function parseTokens(text: string | undefined, dir: string): BootstrapToken[] {
  if (text === undefined) return [];
  const hint =
    'Delete bootstrap-tokens.json and run "klab certs generate": nodes that already joined keep their certificates; new tokens are issued for the rest.';
  const parsed = parseJsonFile(text, dir, 'bootstrap-tokens.json', hint);
  if (!Array.isArray(parsed)) throw corrupt(dir, 'bootstrap-tokens.json', 'not a list', hint);
  return parsed.map((entry: Partial<BootstrapToken>, index) => {
    if (
      typeof entry?.node !== 'string' ||
      !TOKEN_ID.test(String(entry.id)) ||
      !TOKEN_SECRET.test(String(entry.secret))
    ) {
      throw corrupt(
        dir,
        'bootstrap-tokens.json',
        `entry ${index} is not a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16} for a node)`,
        hint,
      );
    }
    return { id: entry.id as string, secret: entry.secret as string, node: entry.node };
  });
}
