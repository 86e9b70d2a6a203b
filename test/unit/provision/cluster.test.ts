import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certFiles } from '../../../provision/certs/index.js';
import { flannelSubnet } from '../../../provision/docker/index.js';
import { CLUSTER_STEPS, provisioningSteps } from '../../../provision/index.js';
import { etcdctlSays } from '../../../provision/lib/cluster.js';
import { putFiles, waitFor } from '../../../provision/lib/guest.js';
import {
  nodeReady,
  systemdTimestampMs,
  unhealthyComponents,
} from '../../../provision/lib/probes.js';
import type { StepContext } from '../../../provision/lib/step.js';
import { isKlabError } from '../../../src/model/errors.js';
import { type Clock, nullSink } from '../../../src/model/events.js';
import { clusterTuning } from '../../../src/model/tuning.js';
import { generatePki } from '../../../src/pki/generate.js';
import { loadStack } from '../../../src/stacks/index.js';
import { installProfile } from '../../../src/stacks/install.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { defaultSpec } from '../../helpers/specs.js';

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

/** A fake host whose sha256sum answers from its files map. */
function hashingHost(name: string): FakeHost {
  const host: FakeHost = new FakeHost(name, (argv) => {
    if (argv[0] !== 'sha256sum') return undefined;
    const lines = argv
      .slice(2)
      .filter((file) => host.files.has(file))
      .map((file) => `${sha(host.files.get(file) ?? '')}  ${file}`);
    return { stdout: `${lines.join('\n')}\n`, exitCode: lines.length === argv.length - 2 ? 0 : 1 };
  });
  return host;
}

describe('the ordered step list', () => {
  it('builds the cluster bottom up, in the documented order', () => {
    expect(CLUSTER_STEPS.map((step) => step.id)).toEqual([
      'kernel',
      'binaries',
      'certs',
      'etcd',
      'flannel',
      'docker',
      'images',
      'control-plane',
      'kubectl',
      'tls-bootstrap',
      'kube-proxy',
      'kubelet',
    ]);
    const ids = provisioningSteps(defaultSpec()).map((step) => step.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('runs etcd on the members, Docker and kubelet on the nodes, the control plane on the master', () => {
    const spec = defaultSpec();
    const on = (id: string) =>
      (CLUSTER_STEPS.find((step) => step.id === id)?.targets?.(spec) ?? spec.vms).map(
        (vm) => vm.name,
      );
    expect(on('etcd')).toEqual(['master', 'node1', 'node2']);
    expect(on('flannel')).toEqual(['master', 'node1', 'node2', 'node3']);
    expect(on('docker')).toEqual(['node1', 'node2', 'node3']);
    expect(on('control-plane')).toEqual(['master']);
    expect(on('kube-proxy')).toEqual(['master', 'node1', 'node2', 'node3']);
    expect(on('kubelet')).toEqual(['node1', 'node2', 'node3']);
  });
});

describe('install profiles', () => {
  it('name only artifacts their stack has', () => {
    for (const name of ['debian', 'v1.11.1'] as const) {
      const stack = loadStack(name);
      const ids = new Set(stack.artifacts.map((artifact) => artifact.id));
      const profile = installProfile(name);
      const used = [
        ...profile.archives.map((archive) => archive.artifact),
        profile.etcd.artifact,
        profile.docker.artifact,
        profile.pauseImage.artifact,
        profile.testAppImage.artifact,
        profile.ingressImage.artifact,
      ];
      for (const id of used) expect(ids, `${name}: ${id}`).toContain(id);
    }
  });
});

describe('managed files', () => {
  it('writes only what differs, with its owner', async () => {
    const host = hashingHost('node1');
    host.files.set('/etc/a.conf', 'same\n');
    const written = await putFiles(host, [
      { path: '/etc/a.conf', content: 'same\n', mode: 0o644 },
      { path: '/etc/new/b.conf', content: 'new\n', mode: 0o600, owner: 'etcd:etcd' },
    ]);
    expect(written).toEqual(['/etc/new/b.conf']);
    expect(host.writes).toEqual([{ path: '/etc/new/b.conf', mode: 0o600, sudo: true }]);
    expect(host.owners.get('/etc/new/b.conf')).toBe('etcd:etcd');
    expect(
      await putFiles(host, [{ path: '/etc/new/b.conf', content: 'new\n', mode: 0o600 }]),
    ).toEqual([]);
  });
});

describe('named waits', () => {
  function fakeClock(): Clock & { slept: number } {
    let now = 0;
    return {
      slept: 0,
      now: () => now,
      async sleep(ms) {
        now += ms;
        this.slept += ms;
      },
    };
  }

  it('returns as soon as the probe is satisfied', async () => {
    const clock = fakeClock();
    let calls = 0;
    await waitFor({ clock }, { what: 'x', vm: 'm', timeoutMs: 60_000, hint: 'h' }, async () =>
      ++calls >= 3 ? true : 'not yet',
    );
    expect(calls).toBe(3);
  });

  it('probes less often as a wait goes on, and last at the deadline', async () => {
    const clock = fakeClock();
    const pauses: number[] = [];
    const sleep = clock.sleep.bind(clock);
    clock.sleep = async (ms) => {
      pauses.push(ms);
      await sleep(ms);
    };
    const error = await waitFor(
      { clock },
      { what: 'x', vm: 'm', timeoutMs: 40_000, hint: 'h' },
      async () => 'not yet',
    ).catch((e: unknown) => e);
    expect(isKlabError(error) && error.code).toBe('KLAB_TIMEOUT');
    expect(pauses).toEqual([3000, 4500, 6750, 10_000, 10_000, 5750]);
    expect(clock.now()).toBe(40_000);
  });

  it('times out with what it waited for, the last reason and a hint', async () => {
    const clock = fakeClock();
    const error = await waitFor(
      { clock },
      {
        what: 'node node1 Ready',
        vm: 'node1',
        timeoutMs: 30_000,
        hint: 'look at kubelet',
        diagnose: async () => 'journal tail',
      },
      async () => 'NotReady: PLEG is not healthy',
    ).catch((e: unknown) => e);
    expect(isKlabError(error) && error.code).toBe('KLAB_TIMEOUT');
    const klab = error as Error & { hint: string; outputTail: string };
    expect(klab.message).toBe(
      'node node1 Ready: not reached within 30 s (NotReady: PLEG is not healthy)',
    );
    expect(klab.hint).toBe('look at kubelet');
    expect(klab.outputTail).toBe('journal tail');
  });
});

describe('certificate distribution', () => {
  const spec = defaultSpec();
  let dir: string;
  let ctx: StepContext;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'klab-certs-'));
    await generatePki(spec, { dir });
    ctx = {
      spec,
      sink: nullSink,
      clock: { now: Date.now, sleep: async () => {} },
      host: () => new FakeHost('x'),
      provisionFile: async () => '',
      profile: installProfile('debian'),
      tuning: clusterTuning(spec, 'tcg'),
      pkiDir: dir,
      artifactFile: () => '',
    };
  }, 60_000);
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const vmNamed = (name: string) => {
    const found = spec.vms.find((entry) => entry.name === name);
    if (!found) throw new Error(`no VM ${name}`);
    return found;
  };
  const paths = async (vm: string) => (await certFiles(ctx, vmNamed(vm))).map((file) => file.path);

  it('gives the CA key, service-account key and encryption config to the master only', async () => {
    const master = await paths('master');
    expect(master).toContain('/etc/kubernetes/pki/ca.key');
    expect(master).toContain('/etc/kubernetes/pki/sa.key');
    expect(master).toContain('/etc/kubernetes/encryption-config.yaml');
    expect(master).toContain('/etc/kubernetes/admin.kubeconfig');
    const node3 = await paths('node3');
    for (const secret of [
      'ca.key',
      'sa.key',
      'admin.key',
      'apiserver.key',
      'etcd-client-apiserver.key',
    ]) {
      expect(node3).not.toContain(`/etc/kubernetes/pki/${secret}`);
    }
    expect(node3).not.toContain('/etc/kubernetes/encryption-config.yaml');
  });

  it('gives a node its bootstrap kubeconfig, its serving certificate and kube-proxy, not a pre-issued client kubeconfig', async () => {
    const node1 = await paths('node1');
    expect(node1).toContain('/etc/kubernetes/bootstrap.kubeconfig');
    expect(node1).toContain('/etc/kubernetes/pki/kubelet-node1.crt');
    expect(node1).toContain('/etc/kubernetes/kube-proxy.kubeconfig');
    expect(node1).not.toContain('/etc/kubernetes/kubelet-node1.kubeconfig');
    expect(node1).not.toContain('/etc/kubernetes/pki/kubelet-node2.key');
  });

  it("puts etcd's own files under /etc/etcd/pki, owned by etcd, on members only", async () => {
    const files = await certFiles(ctx, vmNamed('node2'));
    const etcdFiles = files.filter((file) => file.path.startsWith('/etc/etcd/pki/'));
    expect(etcdFiles.map((file) => path.basename(file.path)).sort()).toEqual([
      'etcd-ca.crt',
      'etcd-peer-node2.crt',
      'etcd-peer-node2.key',
      'etcd-server-node2.crt',
      'etcd-server-node2.key',
    ]);
    expect(etcdFiles.every((file) => file.owner === 'etcd:etcd')).toBe(true);
    expect(etcdFiles.find((file) => file.path.endsWith('.key'))?.mode).toBe(0o600);
    expect((await paths('node3')).some((p) => p.startsWith('/etc/etcd/'))).toBe(false);
  });
});

describe('parsers of cluster answers', () => {
  it("etcdctl's words keep the member's line, not its client's JSON warnings or the bare summary", () => {
    const warn =
      '{"level":"warn","ts":"2026-12-07T01:34:08.342Z","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of unary invoker failed"}';
    expect(
      etcdctlSays(
        `${warn}\nhttps://192.168.56.10:2379 is unhealthy: failed to commit proposal: context deadline exceeded\nError: unhealthy cluster\n`,
      ),
    ).toBe(
      'https://192.168.56.10:2379 is unhealthy: failed to commit proposal: context deadline exceeded',
    );
    // Nothing more specific: the summary stays; plain words pass through.
    expect(etcdctlSays(`${warn}\nError: unhealthy cluster`)).toBe('Error: unhealthy cluster');
    expect(etcdctlSays('Error: context deadline exceeded\n')).toBe(
      'Error: context deadline exceeded',
    );
  });

  it('componentstatuses: lists the unhealthy ones', () => {
    const json = JSON.stringify({
      items: [
        { metadata: { name: 'scheduler' }, conditions: [{ type: 'Healthy', status: 'True' }] },
        {
          metadata: { name: 'controller-manager' },
          conditions: [{ type: 'Healthy', status: 'False', message: 'connection refused' }],
        },
      ],
    });
    expect(unhealthyComponents(json)).toEqual(['controller-manager: connection refused']);
    expect(unhealthyComponents('{"items":[]}')).toEqual(['no componentstatuses']);
  });

  it('node readiness and flannel subnets', () => {
    expect(
      nodeReady(JSON.stringify({ status: { conditions: [{ type: 'Ready', status: 'True' }] } })),
    ).toEqual({
      ready: true,
      reason: 'Ready=True',
      heartbeatMs: 0,
    });
    const reported = {
      status: {
        conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: '2026-11-30T07:00:04Z' }],
      },
    };
    expect(nodeReady(JSON.stringify(reported)).heartbeatMs).toBe(
      Date.parse('2026-11-30T07:00:04Z'),
    );
    expect(nodeReady('{}').ready).toBe(false);
    expect(systemdTimestampMs('Mon 2026-11-30 07:00:04 UTC\n')).toBe(
      Date.parse('2026-11-30T07:00:04Z'),
    );
    expect(systemdTimestampMs('\n')).toBeNaN();
    expect(flannelSubnet('FLANNEL_NETWORK=172.30.0.0/16\nFLANNEL_SUBNET=172.30.42.1/24\n')).toBe(
      '172.30.42.1/24',
    );
    expect(flannelSubnet('')).toBeUndefined();
  });
});
