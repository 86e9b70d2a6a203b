/**
 * Real VMs through Vagrant + libvirt (TCG on hosts where KVM cannot boot guests).
 * One 2-VM lab (master + node1, a whole Kubernetes cluster) is shared by every test in
 * this file, in order: CI has 90 minutes.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  codesOf,
  hasEvent,
  type JsonDocument,
  klab,
  klabJson,
  ok,
  okJson,
} from '../helpers/cli.js';
import { libvirtObjects, removeLeftovers } from '../helpers/libvirt.js';

const LAB = 'e2e';
const PREFIX = `klab-${LAB}`;
const DIR = `/var/tmp/klab-e2e-lab`;
const MASTER_IP = '192.168.213.10';
const NODE1_IP = '192.168.213.11';
const MGMT_GW = '192.168.214.1';

const SPEC = `name: ${LAB}
box: klab/debian-12
stack: debian
network:
  subnet: 192.168.213.0/24
  managementSubnet: 192.168.214.0/24
nodes:
  - name: master
    role: master
    memory: 1536
  - name: node1
    memory: 1536
`;

const CLI = new URL('../../dist/src/cli.js', import.meta.url).pathname;

async function bootId(vm: string): Promise<string> {
  return ok(
    await klab(['ssh', vm, '--', 'cat', '/proc/sys/kernel/random/boot_id'], DIR),
  ).stdout.trim();
}

/** Polls until the VM answers over SSH with another boot id (it really rebooted). */
async function waitForNewBoot(vm: string, before: string): Promise<void> {
  const deadline = Date.now() + 600_000;
  while (Date.now() < deadline) {
    const now = await klab(
      ['ssh', vm, '--', 'cat', '/proc/sys/kernel/random/boot_id'],
      DIR,
      60_000,
    );
    if (now.exitCode === 0 && now.stdout.trim() && now.stdout.trim() !== before) return;
    await new Promise((resolve) => setTimeout(resolve, 5000));
  }
  throw new Error(`${vm} did not come back from its reboot within 600 s`);
}

/** Polls libvirt until every VM's domain is in the state. */
async function waitForState(vms: string[], state: string): Promise<void> {
  const { execa } = await import('execa');
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    const states = await Promise.all(
      vms.map(async (vm) => {
        const result = await execa(
          'virsh',
          ['-c', 'qemu:///system', 'domstate', `${PREFIX}_${vm}`],
          {
            reject: false,
          },
        );
        return String(result.stdout).trim();
      }),
    );
    if (states.every((entry) => entry === state)) return;
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
  throw new Error(`${vms.join(', ')} did not reach "${state}" within 300 s`);
}

interface CheckEntry {
  id: string;
  ok: boolean;
  outcome: string;
  detail: string;
  waitedS: number;
}

function checks(doc: JsonDocument): CheckEntry[] {
  expect(doc.kind).toBe('VerifyReport');
  return doc.checks as CheckEntry[];
}

function check(doc: JsonDocument, id: string): CheckEntry {
  const found = checks(doc).find((entry) => entry.id === id);
  if (!found) throw new Error(`no check ${id} in ${JSON.stringify(doc.checks)}`);
  return found;
}

async function verifyPasses(): Promise<JsonDocument> {
  const doc = okJson(await klabJson(['verify'], DIR));
  expect(doc.code).toBe('VERIFY_PASSED');
  expect(checks(doc).every((entry) => entry.outcome === 'passed')).toBe(true);
  return doc;
}

interface VmRow {
  name: string;
  state: string;
  routeOk: boolean;
  stepsDone: number;
  stepsTotal: number;
}

async function statusOf(vm: string): Promise<VmRow> {
  const doc = okJson(await klabJson(['status'], DIR));
  const row = (doc.vms as VmRow[]).find((entry) => entry.name === vm);
  if (!row) throw new Error(`no VM ${vm} in status`);
  return row;
}

/** The steps state.json records as done on every VM. */
async function stepsDoneEverywhere(): Promise<string[]> {
  const file = `${DIR}/.klab/state.json`;
  if (!existsSync(file)) return [];
  const state = JSON.parse(await readFile(file, 'utf8').catch(() => '{}')) as {
    steps?: Record<string, Record<string, string>>;
  };
  const perVm = ['master', 'node1'].map((vm) => Object.keys(state.steps?.[vm] ?? {}));
  return (perVm[0] ?? []).filter((step) => perVm.every((list) => list.includes(step)));
}

async function defaultRoutes(vm: string): Promise<string[]> {
  const result = ok(await klab(['ssh', vm, '--', 'ip', '-4', 'route', 'show', 'default'], DIR));
  return result.stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('default'));
}

describe('a 2-VM lab on real VMs', () => {
  beforeAll(async () => {
    await removeLeftovers(PREFIX);
    await rm(DIR, { recursive: true, force: true });
    await mkdir(DIR, { recursive: true });
    await writeFile(`${DIR}/klab.yaml`, SPEC);
  });

  afterAll(async () => {
    // Whatever happened, leave no VM running behind.
    await klab(['destroy', '--yes'], DIR);
    await removeLeftovers(PREFIX);
  });

  it('klab doctor finds the host ready', async () => {
    const doc = okJson(await klabJson(['doctor'], DIR));
    expect(doc).toMatchObject({ kind: 'DoctorReport', code: 'DOCTOR_REPORT', ready: true });
  });

  it('klab create, killed with SIGKILL in the middle of a step, is finished by the next klab create', async () => {
    // The first run: killed once the certificates are on every VM (host prep and the
    // binaries are done by then, etcd is next), as a crash or a closed terminal would.
    const { execa } = await import('execa');
    const first = execa('node', [CLI, '--dir', DIR, 'create'], {
      reject: false,
      env: { CI: 'true' },
      stdin: 'ignore',
    });
    let firstErr = '';
    first.stderr?.on('data', (chunk: Buffer) => {
      firstErr += chunk.toString();
    });
    let running = true;
    void first.then(() => {
      running = false;
    });
    while (running && !(await stepsDoneEverywhere()).includes('certs')) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    first.kill('SIGKILL');
    const firstResult = await first;
    expect(firstResult.signal, firstErr).toBe('SIGKILL');
    expect(await stepsDoneEverywhere()).toEqual(
      expect.arrayContaining(['default-route', 'hosts-file', 'machine-id', 'binaries', 'certs']),
    );
    expect(existsSync(`${DIR}/.klab/pki/ca.crt`)).toBe(true);

    // The second run takes over the dead run's lock, skips what is done, and finishes.
    const doc = okJson(await klabJson(['create'], DIR));
    expect(doc.code).toBe('LAB_READY');
    expect(doc.vms).toEqual([
      { name: 'master', role: 'master', ip: MASTER_IP },
      { name: 'node1', role: 'node', ip: NODE1_IP },
    ]);
    expect(hasEvent(doc, 'LOCK_TAKEN_OVER')).toBe(true);
    for (const step of ['default-route', 'hosts-file', 'binaries', 'certs']) {
      expect(codesOf(doc, step)).toEqual(['STEP_ALREADY_DONE']);
    }
    expect(codesOf(doc, 'kubelet')).toEqual(['STEP_APPLIED']);
    // create ends with the cluster checks of klab verify.
    expect(codesOf(doc, 'ingress')).toEqual(['CHECK_PASSED']);
    const certs = okJson(await klabJson(['certs', 'check'], DIR));
    expect(certs.kind).toBe('CertificateCheck');
  });

  it('kubectl works for the learner on the master; node1 joined through a CSR', async () => {
    const nodes = ok(await klab(['ssh', 'master', '--', 'kubectl', 'get', 'nodes'], DIR));
    expect(nodes.stdout).toMatch(/^node1\s+Ready\s/m);
    const csr = ok(await klab(['ssh', 'master', '--', 'kubectl', 'get', 'csr'], DIR));
    expect(csr.stdout).toMatch(/system:bootstrap:[a-z0-9]{6}\s+Approved,Issued/);
    // The CA key stays on the master.
    const caKey = await klab(
      ['ssh', 'node1', '--', 'sudo', 'test', '-e', '/etc/kubernetes/pki/ca.key'],
      DIR,
    );
    expect(caKey.exitCode).toBe(1);
  });

  it('klab verify: the PHP test app answers by pod IP, ClusterIP and ingress', async () => {
    const doc = await verifyPasses();
    for (const id of ['etcd', 'encryption', 'pod-ip', 'cluster-ip', 'ingress']) {
      expect(check(doc, id).outcome).toBe('passed');
    }
    // And from the host, as a learner would try it.
    const { httpGet } = await import('../../src/adapters/http.js');
    const page = await httpGet(`http://${NODE1_IP}/`, { Host: 'php-apache.klab.test' });
    expect(page.status).toBe(200);
    expect(page.body.toString()).toMatch(/served by: php-apache-/);
  });

  it('verify waits, by name and bounded, for Endpoints that come late, and fails naming the wait when they never come', async () => {
    const master = (...argv: string[]) => klab(['ssh', 'master', '--', ...argv], DIR);
    const deleteEndpoints = () =>
      master('kubectl', '-n', 'klab-verify', 'delete', 'endpoints', 'php-apache');
    // The endpoints controller lives in kube-controller-manager. Frozen (SIGSTOP), it is a
    // slow controller, not a stopped one: the unit stays active and nobody rebuilds them.
    ok(await master('sudo', 'systemctl', 'kill', '-s', 'STOP', 'kube-controller-manager'));
    ok(await deleteEndpoints());
    const thaw = () => master('sudo', 'systemctl', 'kill', '-s', 'CONT', 'kube-controller-manager');
    await writeFile(`${DIR}/klab.yaml`, `${SPEC}timeouts:\n  check: 30\n`);
    try {
      const never = await klabJson(['verify'], DIR);
      expect(never.exitCode).toBe(4);
      expect(never.doc.code).toBe('KLAB_VERIFY_FAILED');
      // Frozen is slow, not broken: the waits time out, each naming what it waited for.
      expect(check(never.doc, 'components').outcome).toBe('timed-out');
      expect(check(never.doc, 'rollout').outcome).toBe('timed-out');
      expect(check(never.doc, 'rollout').detail).toContain('Endpoints of klab-verify/php-apache');
      for (const id of ['pod-ip', 'cluster-ip', 'ingress']) {
        expect(check(never.doc, id).outcome).toBe('not-run');
      }
      expect(checks(never.doc).some((entry) => entry.outcome === 'broken')).toBe(false);
    } catch (error) {
      // Leave the lab as the later tests need it, whatever failed here.
      await thaw();
      throw error;
    } finally {
      await writeFile(`${DIR}/klab.yaml`, SPEC);
    }

    // Now they come back 40 s into the run: verify waits for them and passes.
    const late = klabJson(['verify'], DIR);
    await new Promise((resolve) => setTimeout(resolve, 40_000));
    ok(await thaw());
    const doc = okJson(await late);
    expect(checks(doc).every((entry) => entry.outcome === 'passed')).toBe(true);
    expect(check(doc, 'components').waitedS).toBeGreaterThan(0);
    console.log(
      `verify with late Endpoints: ${checks(doc)
        .map((entry) => `${entry.id} waited ${Math.round(entry.waitedS)} s`)
        .join(', ')}`,
    );
  });

  it('the VMs reach each other on the private network, by name too', async () => {
    ok(await klab(['ssh', 'master', '--', 'ping', '-c', '2', '-W', '5', NODE1_IP], DIR));
    ok(await klab(['ssh', 'node1', '--', 'ping', '-c', '2', '-W', '5', MASTER_IP], DIR));
    const byName = ok(await klab(['ssh', 'node1', '--', 'getent', 'ahostsv4', 'master'], DIR));
    expect(byName.stdout.split(/\s+/)[0]).toBe(MASTER_IP);
  });

  it('each VM has exactly one default route, via the management gateway; lab ranges stay inside', async () => {
    for (const vm of ['master', 'node1']) {
      expect(await defaultRoutes(vm)).toEqual([`default via ${MGMT_GW} dev eth0`]);
      // A ClusterIP nobody programmed goes to the isolated private network, not out via NAT.
      const route = ok(
        await klab(['ssh', vm, '--', 'ip', '-4', 'route', 'get', '10.254.250.250'], DIR),
      );
      expect(route.stdout).toContain('dev eth1');
    }
  });

  it('klab ssh node1 -- hostname prints node1, and exit codes pass through', async () => {
    expect(ok(await klab(['ssh', 'node1', '--', 'hostname'], DIR)).stdout.trim()).toBe('node1');
    expect((await klab(['ssh', 'node1', '--', 'sh', '-c', 'exit 7'], DIR)).exitCode).toBe(7);
    const unknown = await klab(['ssh', 'node9', '--', 'true'], DIR);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('error[KLAB_VM_UNKNOWN]');
  });

  it('the VMs have distinct machine-ids', async () => {
    const ids = await Promise.all(
      ['master', 'node1'].map(async (vm) =>
        ok(await klab(['ssh', vm, '--', 'cat', '/etc/machine-id'], DIR)).stdout.trim(),
      ),
    );
    expect(ids[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(ids[0]).not.toBe(ids[1]);
  });

  it('re-running klab create resumes: nothing is rebuilt or re-applied', async () => {
    const doc = okJson(await klabJson(['create'], DIR));
    const steps = doc.events.filter((event) => event.code.startsWith('STEP_'));
    expect(steps.length).toBeGreaterThan(10);
    expect(steps.every((event) => event.code === 'STEP_ALREADY_DONE')).toBe(true);
    expect(hasEvent(doc, 'SNAPSHOT_TAKEN')).toBe(false);
    expect(hasEvent(doc, 'BOX_BUILT')).toBe(false);
    // Every stack artifact comes from the cache; nothing is rebuilt.
    expect(codesOf(doc, 'kubernetes')).toEqual(['ARTIFACT_CACHED']);
    expect(hasEvent(doc, 'ARTIFACT_BUILT')).toBe(false);
  });

  it('took an automatic checkpoint after every provisioning step, on every VM', async () => {
    const doc = okJson(await klabJson(['snapshot', 'list'], DIR));
    const items = doc.items as { name: string; afterStep?: string; complete: boolean }[];
    for (const step of [
      'default-route',
      'hosts-file',
      'machine-id',
      'etcd',
      'flannel',
      'control-plane',
      'kubelet',
    ]) {
      expect(items).toContainEqual(
        expect.objectContaining({ name: `after-${step}`, afterStep: step, complete: true }),
      );
    }
  });

  /** `klab lesson check`: exit 4 with the problems when not done, exit 0 when passed. */
  async function lessonCheck(id: string): Promise<{ passed: boolean; problems: string[] }> {
    const run = await klabJson(['lesson', 'check', id], DIR);
    if (run.exitCode === 0) {
      expect(run.doc.code).toBe('LESSON_PASSED');
      return { passed: true, problems: [] };
    }
    expect(run.exitCode, JSON.stringify(run.doc.error)).toBe(4);
    expect(run.doc.error?.code).toBe('KLAB_LESSON_CHECK_FAILED');
    return { passed: false, problems: (run.doc.error?.details ?? []) as string[] };
  }

  const lessonTimes: string[] = [];

  /** start -> the check fails for the reason given -> solve -> the check passes. */
  async function walkLesson(id: string, reason: RegExp, atStart?: () => Promise<void>) {
    const started = Date.now();
    const start = okJson(await klabJson(['lesson', 'start', id], DIR));
    expect(start).toMatchObject({ code: 'LESSON_STARTED', id });
    expect(hasEvent(start, 'VMS_REVERTED')).toBe(true);
    expect(hasEvent(start, 'LAB_HEALTHY')).toBe(true);
    lessonTimes.push(`${id} ready ${Math.round((Date.now() - started) / 1000)} s`);
    await atStart?.();
    const before = await lessonCheck(id);
    expect(before.passed).toBe(false);
    expect(before.problems.join('\n')).toMatch(reason);
    const solved = okJson(await klabJson(['lesson', 'solve', id], DIR));
    expect(solved.code).toBe('LESSON_SOLVED');
    expect((await lessonCheck(id)).passed).toBe(true);
  }

  it('tutorial lessons, in order: each starts just before its step, its check fails, its solution runs, its check passes', async () => {
    const list = okJson(await klabJson(['lesson', 'list'], DIR));
    const ids = (list.items as { id: string; kind: string }[])
      .filter((item) => item.kind === 'tutorial')
      .map((item) => item.id);
    expect(ids).toEqual(['etcd', 'flannel', 'kubelet']);
    await walkLesson('etcd', /master: etcd is not running/);
    // flannel starts at the early checkpoint after etcd: what was done checks out (the
    // reset waited for it), and nothing of the later steps runs.
    await walkLesson('flannel', /flanneld is not running/, async () => {
      const master = await statusOf('master');
      expect(master).toMatchObject({ state: 'running', routeOk: true });
      expect(master.stepsDone).toBeLessThan(master.stepsTotal);
      // (etcd runs on the master only in this lab; certs are on every VM.)
      expect(await stepsDoneEverywhere()).toContain('certs');
      expect(await stepsDoneEverywhere()).not.toContain('flannel');
      ok(await klab(['ssh', 'master', '--', 'systemctl', 'is-active', 'etcd'], DIR));
      for (const [vm, unit] of [
        ['master', 'kube-apiserver'],
        ['node1', 'kubelet'],
      ] as const) {
        const active = await klab(['ssh', vm, '--', 'systemctl', 'is-active', unit], DIR);
        expect(active.exitCode).not.toBe(0);
      }
    });
    await walkLesson('kubelet', /node1: kubelet is not running/);
    const progress = okJson(await klabJson(['lesson', 'list'], DIR));
    for (const id of ids) {
      expect(progress.items).toContainEqual(
        expect.objectContaining({ id, passed: true, solved: true }),
      );
    }
  });

  it('break/fix lessons: the fault is injected, the check names it, the repair makes it pass; then klab verify passes', async () => {
    await walkLesson(
      'route-deleted',
      /default route[\s\S]*ClusterIP .* does not answer from node1/,
    );
    await walkLesson('kube-proxy-stopped', /kube-proxy is not running on node1/);
    await walkLesson('kubelet-wrong-ca', /trusts \/etc\/kubernetes\/pki\/other-ca\.crt/);
    await walkLesson('swap-on', /swap is on on node1/);
    // flannel-wrong-iface is not walked on real VMs yet (its check is unit-tested): CI's
    // 90 minutes have no room for a fifth reset here until the walk stops resetting.
    // The etcd faults need three members; this lab has one. They are marked, and refused
    // before anything is touched.
    const list = okJson(await klabJson(['lesson', 'list'], DIR));
    const items = list.items as { id: string; kind: string; unsupported?: string }[];
    for (const id of ['etcd-member-stopped', 'etcd-quorum-lost']) {
      expect(items.find((item) => item.id === id)?.unsupported).toMatch(/three etcd members/);
    }
    const refused = await klabJson(['lesson', 'start', 'etcd-quorum-lost'], DIR);
    expect(refused.exitCode).toBe(2);
    expect(refused.doc.error?.code).toBe('KLAB_USAGE');
    expect(hasEvent(refused.doc, 'VMS_REVERTED')).toBe(false);
    // Every break/fix lesson this lab can run was walked above, but flannel-wrong-iface.
    expect(
      items.filter((item) => item.kind === 'break-fix' && !item.unsupported).map((item) => item.id),
    ).toEqual([
      'route-deleted',
      'kube-proxy-stopped',
      'kubelet-wrong-ca',
      'swap-on',
      'flannel-wrong-iface',
    ]);
    // The hints come one at a time, in both languages.
    const first = okJson(await klabJson(['lesson', 'hint', 'swap-on', '--lang', 'zh-CN'], DIR));
    expect(first).toMatchObject({ code: 'LESSON_HINT', number: 1 });
    expect(String(first.text)).toMatch(/kubelet/);
    console.log(`lesson start -> ready: ${lessonTimes.join(', ')}`);
    // The late checkpoint plus the repairs is a working cluster: the PHP page by pod IP,
    // ClusterIP and ingress.
    await verifyPasses();
  });

  it('snapshot save + reset brings every marker back, with correct clocks', async () => {
    const setMarker = (vm: string, text: string) =>
      klab(['ssh', vm, '--', 'sh', '-c', `echo ${text} > /home/vagrant/marker`], DIR);
    for (const vm of ['master', 'node1']) ok(await setMarker(vm, `before-${vm}`));
    const save = okJson(await klabJson(['snapshot', 'save', 'base'], DIR));
    expect(save).toMatchObject({ code: 'SNAPSHOT_SAVED', name: 'base' });
    expect(codesOf(save, 'base')).toEqual(['SNAPSHOT_TAKEN']);
    for (const vm of ['master', 'node1']) ok(await setMarker(vm, 'changed'));
    // Let time pass, so a guest clock left at the snapshot's moment would be visibly wrong.
    await new Promise((resolve) => setTimeout(resolve, 20_000));
    const reset = okJson(await klabJson(['reset', 'base'], DIR));
    expect(reset).toMatchObject({ code: 'LAB_RESET', snapshot: 'base' });
    expect(hasEvent(reset, 'CLOCKS_STEPPED')).toBe(true);
    for (const vm of ['master', 'node1']) {
      expect(
        ok(await klab(['ssh', vm, '--', 'cat', '/home/vagrant/marker'], DIR)).stdout.trim(),
      ).toBe(`before-${vm}`);
      const guest = Number(ok(await klab(['ssh', vm, '--', 'date', '+%s'], DIR)).stdout.trim());
      expect(Math.abs(guest - Date.now() / 1000)).toBeLessThan(10);
    }
  });

  it('reset to the checkpoint after provisioning gives back a cluster that passes klab verify', async () => {
    // Break it: the API server gone, the test app's pods killed, kubelet stopped.
    ok(
      await klab(
        ['ssh', 'master', '--', 'sudo', 'systemctl', 'disable', '--now', 'kube-apiserver'],
        DIR,
      ),
    );
    ok(await klab(['ssh', 'node1', '--', 'sudo', 'systemctl', 'stop', 'kubelet'], DIR));
    ok(
      await klab(['ssh', 'node1', '--', 'sudo', 'sh', '-c', 'docker rm -f $(docker ps -aq)'], DIR),
    );
    // Broken, not slow: verify says so at once instead of waiting out timeouts.check.
    const started = Date.now();
    const broken = await klabJson(['verify'], DIR);
    expect(broken.exitCode).toBe(4);
    expect(check(broken.doc, 'apiserver').outcome).toBe('broken');
    expect(broken.doc.error?.code).toBe('KLAB_VERIFY_FAILED');
    expect(Date.now() - started).toBeLessThan(120_000);
    const reset = okJson(await klabJson(['reset', 'after-kubelet'], DIR));
    expect(reset).toMatchObject({ code: 'LAB_RESET', snapshot: 'after-kubelet' });
    expect(hasEvent(reset, 'LAB_HEALTHY')).toBe(true);
    await verifyPasses();
    const node1 = await statusOf('node1');
    expect(node1).toMatchObject({ state: 'running', routeOk: true });
    expect(node1.stepsDone).toBe(node1.stepsTotal);
  });

  it('reset without a name goes to the newest snapshot', async () => {
    const newest = okJson(await klabJson(['reset'], DIR));
    expect(newest.snapshot).toBe('base');
  });

  it('refuses to reset to a snapshot that only some VMs have, and deletes snapshots', async () => {
    const { execa } = await import('execa');
    await execa('virsh', [
      '-c',
      'qemu:///system',
      'snapshot-create-as',
      `${PREFIX}_master`,
      'partial',
    ]);
    const refused = await klabJson(['reset', 'partial'], DIR);
    expect(refused.exitCode).toBe(2);
    expect(refused.doc.error?.code).toBe('KLAB_SNAPSHOT_MISSING');
    expect(hasEvent(refused.doc, 'VMS_REVERTED')).toBe(false);
    ok(await klab(['snapshot', 'delete', 'partial'], DIR));
    ok(await klab(['snapshot', 'delete', 'base'], DIR));
    const list = okJson(await klabJson(['snapshot', 'list'], DIR));
    const names = (list.items as { name: string }[]).map((item) => item.name);
    expect(names).not.toContain('partial');
    expect(names).not.toContain('base');
  });

  it('keeps exactly one default route after klab halt + klab up, even against a rogue one', async () => {
    // A second default route that the network scripts add at every boot (an if-up.d
    // hook): the klab unit runs after networking and must remove it again.
    const hook =
      '#!/bin/sh\n[ "$IFACE" = eth1 ] && ip route add default via 192.168.213.1 dev eth1 metric 50\nexit 0\n';
    ok(
      await klab(
        [
          'ssh',
          'node1',
          '--',
          'sudo',
          'sh',
          '-c',
          `printf '${hook}' > /etc/network/if-up.d/zz-rogue && chmod 755 /etc/network/if-up.d/zz-rogue`,
        ],
        DIR,
      ),
    );
    ok(await klab(['halt'], DIR));
    expect((await statusOf('master')).state).toBe('shutoff');
    const up = okJson(await klabJson(['up'], DIR));
    expect(up.code).toBe('LAB_UP');
    expect(hasEvent(up, 'DRIFT_AFTER_RESTART')).toBe(false);
    // The tutorial's "apiserver sometimes does not come back after a reboot": it does.
    await verifyPasses();
    for (const vm of ['master', 'node1']) {
      expect(await defaultRoutes(vm)).toEqual([`default via ${MGMT_GW} dev eth0`]);
    }
    const after = await statusOf('node1');
    expect(after).toMatchObject({ state: 'running', routeOk: true });
    expect(after.stepsDone).toBe(after.stepsTotal);
  });

  it('comes back by itself when rebooted nodes first, and when all reboot at once while one VM is killed', async () => {
    // (klab halt + klab up above is the master-first order: up boots the master first.)
    // Nodes first: both down, node1 boots alone while the master (etcd, the apiserver)
    // is still off, then the master follows.
    const nodesFirst = Date.now();
    const { execa: run } = await import('execa');
    const nodeBoot = await bootId('node1');
    for (const vm of ['node1', 'master']) {
      await klab(['ssh', vm, '--', 'sudo', 'systemctl', 'poweroff'], DIR, 120_000);
    }
    await waitForState(['master', 'node1'], 'shut off');
    await run('virsh', ['-c', 'qemu:///system', 'start', `${PREFIX}_node1`]);
    await waitForNewBoot('node1', nodeBoot);
    okJson(await klabJson(['up'], DIR));
    await verifyPasses();
    console.log(
      `reboot nodes first -> verified: ${Math.round((Date.now() - nodesFirst) / 1000)} s`,
    );

    const allAtOnce = Date.now();
    const { execa } = await import('execa');
    const masterBoot = await bootId('master');
    await klab(['ssh', 'master', '--', 'sudo', 'systemctl', 'reboot'], DIR, 120_000);
    // node1 crashes outright: no shutdown, as a power cut would do it.
    await execa('virsh', ['-c', 'qemu:///system', 'destroy', `${PREFIX}_node1`]);
    await waitForNewBoot('master', masterBoot);
    const up = okJson(await klabJson(['up'], DIR));
    expect(hasEvent(up, 'DRIFT_AFTER_RESTART')).toBe(false);
    await verifyPasses();
    console.log(
      `reboot all at once, node1 killed -> verified: ${Math.round((Date.now() - allAtOnce) / 1000)} s`,
    );
  });

  it('klab destroy --yes leaves no domain, volume or network behind', async () => {
    expect((await libvirtObjects(PREFIX)).length).toBeGreaterThan(0);
    const destroyed = okJson(await klabJson(['destroy', '--yes'], DIR));
    expect(destroyed.code).toBe('LAB_DESTROYED');
    expect(await libvirtObjects(PREFIX)).toEqual([]);
    expect((await statusOf('master')).state).toBe('not_created');
  });
});
