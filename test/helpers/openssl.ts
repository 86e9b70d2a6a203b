/** Real openssl for PKI tests: a throwaway self-signed CA. */
import path from 'node:path';
import { execa } from 'execa';

/** Writes `<file>.crt` and `<file>.key` in `dir`: an RSA CA valid for two days. */
export async function makeTestCa(dir: string, file: string, commonName = file): Promise<void> {
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${commonName}`,
    '-keyout',
    path.join(dir, `${file}.key`),
    '-out',
    path.join(dir, `${file}.crt`),
  ]);
}
