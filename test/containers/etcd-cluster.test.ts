/**
 * The binaries, certs and etcd steps over real SSH in three systemd containers built
 * from the box's root filesystem: the default lab's 3-member etcd cluster forms with
 * mutual TLS, refuses clients without a certificate, and comes back after its process
 * is killed (Restart=always). The e2e lab has one member only; this is where quorum is shown,
 * and where the two etcd break/fix lessons are walked: with the control plane on the master,
 * each fault injected, its check failing with its reason, repaired (by hand, as the hints
 * say, or by the lesson's solution), and its check passing again.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binariesStep } from '../../provision/binaries/index.js';
import { certsStep } from '../../provision/certs/index.js';
import { controlPlaneStep } from '../../provision/control-plane/index.js';
import { etcdStep } from '../../provision/etcd/index.js';
import { kubectlStep } from '../../provision/kubectl/index.js';
import { etcdctl, kubectlOnMaster } from '../../provision/lib/cluster.js';
import type { StepContext } from '../../provision/lib/step.js';
import type { SshHost } from '../../src/adapters/ssh.js';
import { runSteps } from '../../src/app/pipeline.js';
import { findLesson, lessonProblems, loadLessons } from '../../src/lessons/catalog.js';
import { runLessonCheck, untilLessonPasses } from '../../src/lessons/check.js';
import { findFault } from '../../src/lessons/faults.js';
import { validateSpec } from '../../src/model/spec-file.js';
import { emptyState } from '../../src/model/state.js';
import { generatePki } from '../../src/pki/generate.js';
import { artifactPath } from '../../src/stacks/cache.js';
import { loadStack } from '../../src/stacks/index.js';
import { klab, ok } from '../helpers/cli.js';
import { testStepContext } from '../helpers/step-context.js';
import {
  createNetwork,
  type SystemdNode,
  startSystemdNode,
  systemdImage,
  type TestNetwork,
} from '../helpers/systemd-container.js';

const spec = validateSpec(
  {
    name: 'ce',
    stack: 'debian',
    network: { subnet: '10.215.0.0/24', managementSubnet: '10.216.0.0/24' },
    nodes: [
      { name: 'master', role: 'master', memory: 1024 },
      { name: 'node1', memory: 1024 },
      { name: 'node2', memory: 1024 },
    ],
  },
  'ce',
  'test',
);
const stack = loadStack('debian');
const networks: TestNetwork[] = [];
const nodes: Record<string, SystemdNode> = {};
const hosts: Record<string, SshHost> = {};
let pkiDir: string;
let labDir: string;

function context(): StepContext {
  return testStepContext(spec, hosts, {
    provisionFile: async () => '',
    pkiDir,
    artifactFile: (id) => {
      const artifact = stack.artifacts.find((entry) => entry.id === id);
      if (!artifact) throw new Error(`no artifact ${id}`);
      return artifactPath(artifact);
    },
  });
}

const member = (name: string) => {
  const vm = spec.vms.find((entry) => entry.name === name);
  if (!vm) throw new Error(`no vm ${name}`);
  return vm;
};

describe('an etcd cluster of three over SSH in systemd containers', () => {
  beforeAll(async () => {
    labDir = await mkdtemp(path.join(os.tmpdir(), 'klab-etcd-'));
    await writeFile(path.join(labDir, 'klab.yaml'), 'stack: debian\nbox: klab/debian-12\n');
    // Cached by its inputs: seconds when the stack tier (or a lab) built it already.
    ok(await klab(['artifacts', 'build', '--stack', 'debian'], labDir));
    pkiDir = path.join(labDir, 'pki');
    await generatePki(spec, { dir: pkiDir });
    const image = await systemdImage();
    const mgmt = await createNetwork('klab-ce-mgmt', '10.216.0.0/24', '10.216.0.1');
    const priv = await createNetwork('klab-ce-priv', '10.215.0.0/24', '10.215.0.1');
    networks.push(mgmt, priv);
    for (const vm of spec.vms) {
      const node = await startSystemdNode(image, vm.name, mgmt);
      // eth1: the lab's private network, with the VM's planned address.
      await execa('docker', [
        'network',
        'connect',
        '--ip',
        vm.ip,
        priv.name,
        node.container.getId(),
      ]);
      nodes[vm.name] = node;
      hosts[vm.name] = await node.connect();
    }
  });

  afterAll(async () => {
    for (const host of Object.values(hosts)) await host.close();
    for (const node of Object.values(nodes)) await node.container.stop({ timeout: 5 });
    for (const network of networks) await network.remove();
    await rm(labDir, { recursive: true, force: true });
  });

  it('installs the programs and certificates, and starts three members', async () => {
    expect(spec.etcdMembers).toEqual(['master', 'node1', 'node2']);
    const outcomes = await runSteps([binariesStep, certsStep, etcdStep], context(), emptyState());
    expect(outcomes.map((o) => `${o.step}@${o.vm}:${o.result}`)).toEqual(
      ['binaries', 'certs', 'etcd'].flatMap((step) =>
        ['master', 'node1', 'node2'].map((vm) => `${step}@${vm}:applied`),
      ),
    );
  });

  it('every member is healthy and the member list has all three', async () => {
    const list = await etcdctl(context(), member('node1'), ['member', 'list', '-w', 'simple']);
    const names = list.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(', ')[2]);
    expect(names.sort()).toEqual(['master', 'node1', 'node2']);
    const endpoints = spec.vms.map((vm) => `https://${vm.ip}:2379`).join(',');
    const health = await etcdctl(context(), member('master'), [
      `--endpoints=${endpoints}`,
      'endpoint',
      'health',
    ]);
    const healthy = new Set(
      `${health.stdout}\n${health.stderr}`
        .split('\n')
        .filter((line) => line.includes('is healthy'))
        .map((line) => line.split(' ')[0]),
    );
    expect([...healthy].sort()).toEqual(spec.vms.map((vm) => `https://${vm.ip}:2379`));
  });

  it('refuses a client without a certificate, and keeps the CA key off the nodes', async () => {
    const anonymous = await hosts.node2?.run(
      [
        'curl',
        '-sS',
        '--cacert',
        '/etc/kubernetes/pki/ca.crt',
        `https://${member('master').ip}:2379/version`,
      ],
      { allowFailure: true },
    );
    expect(anonymous?.exitCode).not.toBe(0);
    const onNode = await hosts.node1?.run(['sudo', 'test', '-e', '/etc/kubernetes/pki/ca.key'], {
      allowFailure: true,
    });
    expect(onNode?.exitCode).toBe(1);
    const keyMode = await hosts.node1?.run(
      ['stat', '-c', '%U %a', '/etc/etcd/pki/etcd-peer-node1.key'],
      {
        sudo: true,
      },
    );
    expect(keyMode?.stdout.trim()).toBe('etcd 600');
  });

  it("trusts only its own CA: the apiserver's and flanneld's certificates pass, kube-proxy's is refused", async () => {
    const getVersion = (vm: string, cert: string) =>
      hosts[vm]?.run(
        [
          'curl',
          '-sS',
          '--max-time',
          '20',
          '--cacert',
          '/etc/kubernetes/pki/etcd-ca.crt',
          '--cert',
          `/etc/kubernetes/pki/${cert}.crt`,
          '--key',
          `/etc/kubernetes/pki/${cert}.key`,
          `https://${member('node1').ip}:2379/version`,
        ],
        { sudo: true, allowFailure: true },
      );
    const apiserver = await getVersion('master', 'etcd-client-apiserver');
    expect(apiserver?.exitCode, apiserver?.stderr).toBe(0);
    expect(apiserver?.stdout).toContain('etcdserver');
    const flanneld = await getVersion('node2', 'etcd-client-flanneld');
    expect(flanneld?.exitCode, flanneld?.stderr).toBe(0);
    // Signed by the lab CA, which every Kubernetes component trusts, but etcd does not.
    const kubeProxy = await getVersion('node2', 'kube-proxy');
    expect(kubeProxy?.exitCode).not.toBe(0);
    expect(kubeProxy?.stdout).not.toContain('etcdserver');
  });

  it('a killed member is restarted by systemd and rejoins', async () => {
    await hosts.node1?.run(['systemctl', 'kill', '-s', 'KILL', 'etcd'], { sudo: true });
    // The step's verify waits until the member is healthy again.
    await etcdStep.verify(context(), member('node1'));
    const restarts = await hosts.node1?.run(['systemctl', 'show', '-p', 'NRestarts', 'etcd']);
    expect(Number(restarts?.stdout.trim().split('=')[1])).toBeGreaterThanOrEqual(1);
  });

  it('a second run finds everything done', async () => {
    const outcomes = await runSteps([binariesStep, certsStep, etcdStep], context(), emptyState());
    expect(outcomes.every((o) => o.result === 'already-done')).toBe(true);
  });

  it('runs the control plane on the master, over the three members', async () => {
    const outcomes = await runSteps([controlPlaneStep, kubectlStep], context(), emptyState());
    expect(outcomes.map((o) => `${o.step}@${o.vm}:${o.result}`)).toEqual([
      'control-plane@master:applied',
      'kubectl@master:applied',
    ]);
  });

  /** Inject the lesson's fault, as `klab lesson start --here` does; its check must then fail. */
  async function injected(id: string) {
    const lesson = findLesson(await loadLessons(spec), id);
    expect(lessonProblems(lesson, spec)).toEqual([]);
    const fault = findFault(id);
    if (!fault) throw new Error(`no fault ${id}`);
    expect(fault.unsupported?.(spec)).toBeUndefined();
    expect(await runLessonCheck(context(), lesson)).toEqual({ passed: true, problems: [] });
    await fault.inject(context());
    return { lesson, fault, check: await runLessonCheck(context(), lesson) };
  }

  it('etcd-member-stopped: node2 stopped, quorum kept; started by hand as the hints say', async () => {
    const { lesson, check } = await injected('etcd-member-stopped');
    expect(check).toEqual({ passed: false, problems: ['etcd is not running on node2'] });
    // The cluster still has its quorum: the apiserver reads and writes.
    const write = await kubectlOnMaster(
      context(),
      ['create', 'configmap', 'written-with-two-members', '--from-literal=members=2'],
      { allowFailure: true },
    );
    expect(write.exitCode, write.stderr).toBe(0);
    // The last hint, typed by the learner on the stopped member.
    await hosts.node2?.run(['systemctl', 'start', 'etcd'], { sudo: true });
    const after = await untilLessonPasses(context(), lesson);
    expect(after).toEqual({ passed: true, problems: [] });
    // node2 caught up: it holds the write made while it was down.
    const got = await etcdctl(context(), member('node2'), [
      'get',
      '/registry/configmaps/default/written-with-two-members',
      '--keys-only',
    ]);
    expect(got.stdout.trim()).toBe('/registry/configmaps/default/written-with-two-members');
  });

  it('etcd-quorum-lost: node1 and node2 stopped, no writes; the solution restores it', async () => {
    const { lesson, fault, check } = await injected('etcd-quorum-lost');
    expect(check.passed).toBe(false);
    expect(check.problems).toEqual(
      expect.arrayContaining(['etcd is not running on node1', 'etcd is not running on node2']),
    );
    // The master's member runs but, alone, is no cluster: the check says so too.
    expect(check.problems.find((problem) => problem.startsWith('master: '))).toMatch(
      /^master: etcd is not healthy/,
    );
    const write = await kubectlOnMaster(
      context(),
      ['--request-timeout=10s', 'create', 'configmap', 'written-without-quorum'],
      { allowFailure: true },
    );
    expect(write.exitCode).not.toBe(0);
    // As `klab lesson solve` does: the repair, then the check, waited for.
    await fault.repair(context());
    expect(await untilLessonPasses(context(), lesson)).toEqual({ passed: true, problems: [] });
  });
});
