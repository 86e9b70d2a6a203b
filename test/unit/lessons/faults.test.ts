/** The break/fix faults' checks are exact: a fault bypassed or half repaired still fails. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findFault, kubeletClientCaFile } from '../../../src/lessons/faults.js';
import { FakeHost, type Handler } from '../../helpers/fake-host.js';
import { twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const spec = twoVmSpec();
const LAB_CA = '-----BEGIN CERTIFICATE-----\nLAB\n-----END CERTIFICATE-----';
const OTHER_CA = '-----BEGIN CERTIFICATE-----\nOTHER\n-----END CERTIFICATE-----';
let pkiDir: string;

beforeAll(async () => {
  pkiDir = await mkdtemp(path.join(os.tmpdir(), 'klab-fault-pki-'));
  await writeFile(path.join(pkiDir, 'ca.crt'), `${LAB_CA}\n`);
});
afterAll(() => rm(pkiDir, { recursive: true, force: true }));

function fault(id: string) {
  const found = findFault(id);
  if (!found) throw new Error(`no fault ${id}`);
  return found;
}

/** master answers kubectl, node1 answers with `node`; both record what ran. */
function lab(node: Handler, master: Handler = () => undefined) {
  const hosts = { master: new FakeHost('master', master), node1: new FakeHost('node1', node) };
  return { hosts, ctx: testStepContext(spec, hosts, { pkiDir }) };
}

const READY_NODE = JSON.stringify({
  status: { conditions: [{ type: 'Ready', status: 'True' }] },
});
const NOT_READY_NODE = JSON.stringify({
  status: { conditions: [{ type: 'Ready', status: 'False', message: 'kubelet stopped posting' }] },
});

function kubectlMaster(node: string, proxy = 'ok'): Handler {
  return (argv) => {
    const args = argv.join(' ');
    if (args.includes('get node node1')) return { stdout: node };
    if (args.includes('/proxy/healthz')) return { stdout: proxy };
    return undefined;
  };
}

describe('route-deleted', () => {
  const gateway = spec.network.managementGateway;
  const withRoutes =
    (routes: string, httpCode: string): Handler =>
    (argv) => {
      if (argv.join(' ') === 'ip -4 route show default') return { stdout: routes };
      if (argv[0] === 'curl') return { stdout: httpCode };
      return undefined;
    };

  it('fails with no default route and a dead ClusterIP, naming both', async () => {
    const { ctx } = lab(withRoutes('', '000'));
    const problems = await fault('route-deleted').problems(ctx);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain(`default via ${gateway} dev eth0`);
    expect(problems[1]).toMatch(/ClusterIP 10\.254\.0\.1:443 .* does not answer from node1/);
  });

  it('fails with a second default route, even when the ClusterIP answers', async () => {
    const two = `default via ${gateway} dev eth0\ndefault via 10.77.0.1 dev eth1 metric 50\n`;
    const { ctx } = lab(withRoutes(two, '401'));
    expect(await fault('route-deleted').problems(ctx)).toHaveLength(1);
  });

  it('passes with the one default route and a ClusterIP that answers (401 without credentials)', async () => {
    const { ctx } = lab(withRoutes(`default via ${gateway} dev eth0 onlink\n`, '401'));
    expect(await fault('route-deleted').problems(ctx)).toEqual([]);
  });
});

describe('kube-proxy-stopped', () => {
  const node =
    (active: string, httpCode: string): Handler =>
    (argv) => {
      if (argv[0] === 'systemctl') return { stdout: active, exitCode: active === 'active' ? 0 : 3 };
      if (argv[0] === 'curl') return { stdout: httpCode };
      if (argv[0] === 'ip')
        return { stdout: '172.30.5.0/24 via 172.30.5.0 dev flannel.1 onlink\n' };
      return undefined;
    };

  it('fails while kube-proxy is stopped, and while the ClusterIP is dead after a start', async () => {
    expect(await fault('kube-proxy-stopped').problems(lab(node('inactive', '000')).ctx)).toEqual([
      'kube-proxy is not running on node1',
      expect.stringContaining('does not answer from node1'),
    ]);
    expect(await fault('kube-proxy-stopped').problems(lab(node('active', '000')).ctx)).toHaveLength(
      1,
    );
  });

  it('passes once kube-proxy runs and the ClusterIP answers', async () => {
    expect(await fault('kube-proxy-stopped').problems(lab(node('active', '403')).ctx)).toEqual([]);
  });
});

describe('kubelet-wrong-ca', () => {
  const config = (file: string) =>
    `authentication:\n  x509:\n    clientCAFile: ${file}\nreadOnlyPort: 0\n`;
  const node =
    (caFile: string, content: string): Handler =>
    (argv) => {
      const file = argv.at(-1);
      if (argv[0] === 'cat' && file?.endsWith('kubelet-config.yaml'))
        return { stdout: config(caFile) };
      if (argv[0] === 'cat' && file === caFile) return { stdout: `${content}\n` };
      return undefined;
    };

  it('reads clientCAFile from the kubelet configuration', () => {
    expect(kubeletClientCaFile(config('/etc/kubernetes/pki/ca.crt'))).toBe(
      '/etc/kubernetes/pki/ca.crt',
    );
    expect(kubeletClientCaFile('clientCAFile: "/x/y.crt"\n')).toBe('/x/y.crt');
  });

  it('fails while the kubelet trusts another CA, and the node proxy is refused', async () => {
    const { ctx } = lab(
      node('/etc/kubernetes/pki/other-ca.crt', OTHER_CA),
      kubectlMaster(READY_NODE, 'Unauthorized'),
    );
    const problems = await fault('kubelet-wrong-ca').problems(ctx);
    expect(problems[0]).toContain('trusts /etc/kubernetes/pki/other-ca.crt');
    expect(problems[1]).toContain('cannot talk to the kubelet on node1');
  });

  it('a bypass does not pass: the node proxy working is not enough while the CA is not the lab CA', async () => {
    const { ctx } = lab(node('/etc/kubernetes/pki/ca.crt', OTHER_CA), kubectlMaster(READY_NODE));
    expect(await fault('kubelet-wrong-ca').problems(ctx)).toHaveLength(1);
  });

  it('passes with the lab CA, wherever the file is, and the node proxy answering', async () => {
    const { ctx } = lab(
      node('/etc/kubernetes/pki/copy-of-lab-ca.crt', LAB_CA),
      kubectlMaster(READY_NODE),
    );
    expect(await fault('kubelet-wrong-ca').problems(ctx)).toEqual([]);
  });
});

describe('swap-on', () => {
  const node =
    (swaps: string, fstab: string, kubelet: string): Handler =>
    (argv) => {
      if (argv[0] === 'swapon') return { stdout: swaps };
      if (argv[0] === 'cat' && argv[1] === '/etc/fstab') return { stdout: fstab };
      if (argv[0] === 'systemctl')
        return { stdout: kubelet, exitCode: kubelet === 'active' ? 0 : 3 };
      return undefined;
    };
  const FSTAB = 'UUID=abc / ext4 errors=remount-ro 0 1\n';

  it('fails while swap is on, names the fstab line that brings it back, and a kubelet that is down', async () => {
    const { ctx } = lab(
      node('/swapfile.klab\n', `${FSTAB}/swapfile.klab none swap sw 0 0\n`, 'activating'),
      kubectlMaster(NOT_READY_NODE),
    );
    expect(await fault('swap-on').problems(ctx)).toEqual([
      'swap is on on node1: /swapfile.klab',
      '/etc/fstab on node1 turns swap on at boot: /swapfile.klab none swap sw 0 0',
      'kubelet is not running on node1',
    ]);
  });

  it('swapoff alone is not the fix: the fstab line would bring it back at boot', async () => {
    const { ctx } = lab(
      node('', `${FSTAB}/swapfile.klab none swap sw 0 0\n`, 'active'),
      kubectlMaster(READY_NODE),
    );
    expect(await fault('swap-on').problems(ctx)).toHaveLength(1);
  });

  it('a NotReady node does not pass: Ready is checked exactly', async () => {
    const { ctx } = lab(node('', FSTAB, 'active'), kubectlMaster(NOT_READY_NODE));
    expect(await fault('swap-on').problems(ctx)).toEqual([
      'node node1 is not Ready: kubelet stopped posting',
    ]);
  });

  it('passes with swap off for good, the kubelet running and the node Ready', async () => {
    const commented = `${FSTAB}# /swapfile none swap sw 0 0\n`;
    const { ctx } = lab(node('', commented, 'active'), kubectlMaster(READY_NODE));
    expect(await fault('swap-on').problems(ctx)).toEqual([]);
  });
});
