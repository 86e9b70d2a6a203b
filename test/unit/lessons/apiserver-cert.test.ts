/**
 * The certificates lesson's check judges kube-apiserver's certificate and key by what they
 * are (real openssl makes them here), and its setup and repair touch only that pair.
 */
import { createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APISERVER_CERT,
  APISERVER_KEY,
  apiserverCertProblems,
  apiserverCertRemoved,
  parseSans,
} from '../../../src/lessons/apiserver-cert.js';
import { issueApiserverCertScript, wrongApiserverSans } from '../../../src/lessons/faults.js';
import { planPki } from '../../../src/pki/plan.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { makeTestCa } from '../../helpers/openssl.js';
import { twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const spec = twoVmSpec();
const plan = planPki(spec).certs.find((cert) => cert.name === 'apiserver');
if (!plan) throw new Error('no apiserver certificate in the plan');
const RIGHT_SANS = [
  ...plan.dnsNames.map((name) => `DNS:${name}`),
  ...plan.ipAddresses.map((ip) => `IP:${ip}`),
].join(',');

let dir: string;

/** Issues a pair into `dir` (apiserver.crt/.key) from the CA named, with the SANs given. */
async function issue(sans: string, ca = 'ca'): Promise<{ certPem: string; keyPublicPem: string }> {
  const work = await mkdtemp(path.join(dir, 'issue-'));
  await execa('cp', [path.join(dir, `${ca}.crt`), path.join(work, 'ca.crt')]);
  await execa('cp', [path.join(dir, `${ca}.key`), path.join(work, 'ca.key')]);
  await execa('sh', ['-c', issueApiserverCertScript(sans, { dir: work, restart: 'true' })]);
  const key = await readFile(path.join(work, 'apiserver.key'), 'utf8');
  return {
    certPem: await readFile(path.join(work, 'apiserver.crt'), 'utf8'),
    keyPublicPem: createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString(),
  };
}

let caPem: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'klab-apiserver-cert-'));
  await makeTestCa(dir, 'ca');
  await makeTestCa(dir, 'other-ca');
  caPem = await readFile(path.join(dir, 'ca.crt'), 'utf8');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const judge = (pair: { certPem: string; keyPublicPem: string }, keyMode = '600') =>
  apiserverCertProblems({ ...pair, caPem, wanted: plan, keyMode, now: new Date() });

describe('the certificates lesson check', () => {
  it('passes a pair issued by hand from the lab CA with every SAN', async () => {
    expect(judge(await issue(RIGHT_SANS))).toEqual([]);
  });

  it("names each SAN the certificate lacks: the kubernetes Service's are the classic slip", async () => {
    const problems = judge(await issue(wrongApiserverSans(spec)));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('kubernetes.default.svc.cluster.local');
    expect(problems[0]).toContain('10.254.0.1');
    expect(problems[0]).not.toContain(`${spec.vms[0]?.ip},`);
  });

  it('refuses a certificate from another CA, a key that is not its pair, and a key others can read', async () => {
    const right = await issue(RIGHT_SANS);
    const foreign = await issue(RIGHT_SANS, 'other-ca');
    expect(judge(foreign)).toEqual([expect.stringContaining('is not signed by the lab CA')]);
    const other = await issue(RIGHT_SANS);
    expect(judge({ certPem: right.certPem, keyPublicPem: other.keyPublicPem })).toEqual([
      expect.stringContaining(`${APISERVER_KEY} is not the key of ${APISERVER_CERT}`),
    ]);
    expect(judge(right, '644')).toEqual([expect.stringContaining('chmod 600')]);
    expect(judge(right, '640')).toHaveLength(1);
    expect(judge({ certPem: 'not a certificate', keyPublicPem: '' })).toEqual([
      `${APISERVER_CERT} is not a PEM certificate`,
    ]);
  });

  it('refuses a client certificate (no serverAuth) and one not valid yet', async () => {
    const client = await mkdtemp(path.join(dir, 'client-'));
    await execa('sh', [
      '-c',
      [
        'set -e',
        `cd ${client}`,
        `printf 'subjectAltName=${RIGHT_SANS}\\nextendedKeyUsage=clientAuth\\n' > ext`,
        'openssl req -new -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout key -out csr 2>/dev/null',
        `openssl x509 -req -in csr -CA ${dir}/ca.crt -CAkey ${dir}/ca.key -set_serial 7 -days 1 -extfile ext -out crt 2>/dev/null`,
      ].join('\n'),
    ]);
    const pair = {
      certPem: await readFile(path.join(client, 'crt'), 'utf8'),
      keyPublicPem: createPublicKey(await readFile(path.join(client, 'key'), 'utf8'))
        .export({ type: 'spki', format: 'pem' })
        .toString(),
    };
    expect(judge(pair)).toEqual([expect.stringContaining('is not a server certificate')]);
    const yesterday = new Date(Date.now() - 2 * 86_400_000);
    const early = apiserverCertProblems({
      ...(await issue(RIGHT_SANS)),
      caPem,
      wanted: plan,
      keyMode: '600',
      now: yesterday,
    });
    expect(early).toEqual([expect.stringContaining('is not valid now')]);
  });

  it('reads the SANs as node:crypto prints them', () => {
    expect(parseSans('DNS:Kubernetes, IP Address:10.254.0.1, DNS:master')).toEqual({
      dns: ['kubernetes', 'master'],
      ips: ['10.254.0.1'],
    });
    expect(parseSans(undefined)).toEqual({ dns: [], ips: [] });
  });
});

describe('the apiserver-cert-removed setup', () => {
  it('removes only the pair on the master; the check says both must exist; the repair puts back klab’s', async () => {
    const pkiDir = await mkdtemp(path.join(dir, 'pki-'));
    const pair = await issue(RIGHT_SANS);
    await execa('sh', [
      '-c',
      `cp ${path.join(dir, 'ca.key')} ${pkiDir}/ca.key && printf '%s' "$1" > ${pkiDir}/apiserver.crt && touch ${pkiDir}/apiserver.key`,
      'sh',
      pair.certPem,
    ]);
    const master = new FakeHost('master', (argv) =>
      argv[0] === 'sh' ? { exitCode: 1, stderr: '' } : undefined,
    );
    const ctx = testStepContext(spec, { master, node1: new FakeHost('node1') }, { pkiDir });
    await apiserverCertRemoved.inject(ctx);
    expect(master.commands()).toEqual([`sudo rm -f ${APISERVER_CERT} ${APISERVER_KEY}`]);
    expect(await apiserverCertRemoved.problems(ctx)).toEqual([
      expect.stringMatching(/^master: .*apiserver\.crt and .*apiserver\.key must both exist/),
    ]);
    await apiserverCertRemoved.repair(ctx);
    expect(master.files.get(APISERVER_CERT)).toBe(pair.certPem);
    expect(master.writes.map((write) => write.path).sort()).toEqual(
      [APISERVER_CERT, APISERVER_KEY].sort(),
    );
    expect(master.writes.find((write) => write.path === APISERVER_KEY)?.mode).toBe(0o600);
  });
});
