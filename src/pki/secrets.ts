/** Secrets that are not certificates: encryption-at-rest config and bootstrap tokens. */
import { randomBytes } from 'node:crypto';
import YAML from 'yaml';
import type { StackName } from '../model/spec.js';

export interface BootstrapToken {
  id: string;
  secret: string;
  node: string;
}

const TOKEN_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

function tokenPart(length: number, random: (n: number) => Buffer): string {
  let out = '';
  while (out.length < length) {
    for (const byte of random(length)) {
      // 252 = 7 * 36: reject the tail so every character is equally likely.
      if (byte < 252 && out.length < length) out += TOKEN_ALPHABET[byte % 36];
    }
  }
  return out;
}

/** A bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}, as kube-apiserver expects. */
export function newBootstrapToken(
  node: string,
  random: (n: number) => Buffer = randomBytes,
): BootstrapToken {
  return { id: tokenPart(6, random), secret: tokenPart(16, random), node };
}

export function newEncryptionKey(random: (n: number) => Buffer = randomBytes): string {
  return random(32).toString('base64');
}

/**
 * aescbc encryption of Secrets at rest. Kubernetes 1.11 reads the older EncryptionConfig
 * (v1) through --experimental-encryption-provider-config; 1.13+ reads
 * EncryptionConfiguration (apiserver.config.k8s.io/v1) through --encryption-provider-config.
 */
export function renderEncryptionConfig(stack: StackName, key: string): string {
  const resources = [
    {
      resources: ['secrets'],
      providers: [{ aescbc: { keys: [{ name: 'key1', secret: key }] } }, { identity: {} }],
    },
  ];
  const doc =
    stack === 'v1.11.1'
      ? { kind: 'EncryptionConfig', apiVersion: 'v1', resources }
      : { kind: 'EncryptionConfiguration', apiVersion: 'apiserver.config.k8s.io/v1', resources };
  return YAML.stringify(doc);
}
