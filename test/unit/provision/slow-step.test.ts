/** A step whose part runs but is slow gets one bounded, named extension; a broken one does not. */
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiserverStillStarting } from '../../../provision/control-plane/index.js';
import {
  apiserverBusy,
  bootstrapPending,
  csrAwaitsApprover,
  nodeJoinedButSlow,
} from '../../../provision/kubelet/index.js';
import { probeStep } from '../../../provision/lib/cluster.js';
import { healthzProblem, nodeLookupProblem } from '../../../provision/lib/probes.js';
import {
  fileDiffers,
  fileDiffersHint,
  isFileDiffers,
  serviceStep,
} from '../../../provision/lib/service-step.js';
import { KlabError } from '../../../src/model/errors.js';
import type { KlabEvent } from '../../../src/model/events.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const STARTING =
  'kube-apiserver /healthz: Error from server (InternalError): an error on the server ("[+]ping ok\\n[+]log ok\\n[+]etcd ok\\n[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\\nhealthz check failed")';

/** A clock that moves only when someone sleeps, and a step whose problems last `polls` polls. */
function slowStep(
  polls: number,
  problem: string,
  alive?: (p: readonly string[]) => boolean,
  lasting?: (p: string) => boolean,
) {
  let now = 0;
  let calls = 0;
  const events: KlabEvent[] = [];
  const spec = { ...twoVmSpec(), timeouts: { ...twoVmSpec().timeouts, health: 60 } };
  const ctx = testStepContext(
    spec,
    { master: new FakeHost('master') },
    {
      clock: {
        now: () => now,
        sleep: async (ms) => {
          now += ms;
        },
      },
      sink: { emit: (event) => events.push(event) },
    },
  );
  const step = probeStep({
    id: 'control-plane',
    title: 'test',
    problems: async () => (++calls > polls ? [] : [problem]),
    apply: async () => {},
    waits: true,
    hint: () => 'look at the journal',
    ...(alive ? { alive } : {}),
    ...(lasting ? { lasting, lastingHint: (vm) => fileDiffersHint('control-plane', vm.name) } : {}),
  });
  const vm = spec.vms[0];
  if (!vm) throw new Error('no VM');
  return { verify: () => step.verify(ctx, vm), events, elapsed: () => now, calls: () => calls };
}

describe('slow, not broken', () => {
  it('an apiserver still running its post-start hooks is alive; one without etcd, or stopped, is not', () => {
    expect(apiserverStillStarting([STARTING])).toBe(true);
    expect(apiserverStillStarting([STARTING.replace('[+]etcd ok', '[-]etcd failed')])).toBe(false);
    expect(apiserverStillStarting(['kube-apiserver is not running'])).toBe(false);
    expect(apiserverStillStarting(['kube-apiserver /healthz: no answer'])).toBe(false);
    expect(apiserverStillStarting([])).toBe(false);
  });

  it("/healthz's answer is cut down to the failing checks, and still tells starting from broken", () => {
    const raw = `Error from server (InternalError): an error on the server ("${[
      '[+]ping ok',
      '[+]log ok',
      '[+]etcd ok',
      '[+]poststarthook/start-kube-apiserver-admission-initializer ok',
      '[+]poststarthook/generic-apiserver-start-informers ok',
      '[-]poststarthook/rbac/bootstrap-roles failed: reason withheld',
      '[-]poststarthook/scheduling/bootstrap-system-priority-classes failed: reason withheld',
      '[+]autoregister-completion ok',
      'healthz check failed',
    ].join('\\n')}") has prevented the request from succeeding`;
    const problem = healthzProblem(raw);
    expect(problem).toBe(
      'kube-apiserver /healthz: [-]poststarthook/rbac/bootstrap-roles, [-]poststarthook/scheduling/bootstrap-system-priority-classes failing (6 of 8 checks ok)',
    );
    expect(apiserverStillStarting([problem])).toBe(true);
    expect(
      apiserverStillStarting([healthzProblem(raw.replace('[+]etcd ok', '[-]etcd failed'))]),
    ).toBe(false);
    expect(healthzProblem('Unable to connect to the server: net/http: TLS handshake timeout')).toBe(
      'kube-apiserver /healthz: Unable to connect to the server: net/http: TLS handshake timeout',
    );
    expect(healthzProblem('')).toBe('kube-apiserver /healthz: no answer');
  });

  it('a node lookup the API server did not answer is not "not registered", and still waits for the approver', () => {
    expect(
      nodeLookupProblem('node1', 'Error from server (NotFound): nodes "node1" not found\n'),
    ).toBe('node node1 is not registered');
    const timeout = nodeLookupProblem(
      'node1',
      'Unable to connect to the server: net/http: request canceled (Client.Timeout exceeded while awaiting headers)\n',
    );
    expect(timeout).toBe(
      'the API server did not answer about node node1: Unable to connect to the server: net/http: request canceled (Client.Timeout exceeded while awaiting headers)',
    );
    expect(bootstrapPending([timeout])).toBe(true);
    expect(nodeLookupProblem('node1', '')).toBe(
      'the API server did not answer about node node1: no answer',
    );
  });

  it('a joined node whose status reports do not get through is alive; one that never joined is not', () => {
    const quiet = 'node node2 is not Ready: Kubelet stopped posting node status.';
    expect(nodeJoinedButSlow([quiet])).toBe(true);
    expect(
      nodeJoinedButSlow([
        'node node2 is not Ready: PLEG is not healthy: pleg was last seen active 3m0s ago',
      ]),
    ).toBe(true);
    expect(nodeJoinedButSlow([quiet, 'kubelet is not running'])).toBe(false);
    expect(nodeJoinedButSlow(['no client certificate from TLS bootstrap yet'])).toBe(false);
    expect(nodeJoinedButSlow(['node node2 is not registered'])).toBe(false);
    expect(
      nodeJoinedButSlow([
        'node node2 is not Ready: runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:docker: network plugin is not ready: cni config uninitialized',
      ]),
    ).toBe(false);
    expect(nodeJoinedButSlow([])).toBe(false);
  });

  it('past timeouts.health, a slow but alive part gets twice as long again, said with STEP_SLOW', async () => {
    // 60 s of health timeout, polls 3 s apart growing to 10 s: still starting at ~94 s (the
    // 12th poll), healthy after.
    const run = slowStep(12, STARTING, apiserverStillStarting);
    await run.verify();
    expect(run.elapsed()).toBeGreaterThan(60_000);
    const slow = run.events.filter((event) => event.code === 'STEP_SLOW');
    expect(slow).toHaveLength(1);
    expect(slow[0]).toMatchObject({ kind: 'notice', level: 'warn' });
    expect((slow[0] as { text: string }).text).toContain('slow, not broken');
  });

  it('the extension is bounded: still not done after it, the step times out naming the wait', async () => {
    const run = slowStep(1000, STARTING, apiserverStillStarting);
    const error = await run.verify().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KlabError);
    expect((error as KlabError).code).toBe('KLAB_TIMEOUT');
    expect((error as KlabError).message).toContain('control-plane on master (slow: still');
    expect(run.elapsed()).toBeLessThanOrEqual(3 * 60_000 + 3_000);
  });

  it('a managed file that differs fails at once (no wait mends it), with what to do', async () => {
    // A checkpoint made by an older klab: its unit file is not what this klab writes.
    const unit = fileDiffers('/etc/systemd/system/kube-apiserver.service');
    const run = slowStep(1000, unit, apiserverStillStarting, isFileDiffers);
    const error = (await run.verify().catch((e: unknown) => e)) as KlabError;
    expect(error.code).toBe('KLAB_STEP_FAILED');
    expect(error.message).toBe(
      'control-plane on master: /etc/systemd/system/kube-apiserver.service differs',
    );
    expect(error.hint).toMatch(/"klab create" applies the control-plane step again/);
    expect(error.hint).toContain('klab ssh master -- cat');
    expect(run.elapsed()).toBe(0);
    expect(run.calls()).toBe(1);
  });

  it("a service step's settle waits for the result alone: a unit file of the learner's own passes, a stopped unit does not", async () => {
    const step = serviceStep({
      id: 'etcd',
      title: 'etcd',
      units: ['etcd'],
      files: () => [
        { path: '/etc/systemd/system/etcd.service', content: "klab's unit\n", mode: 0o644 },
      ],
    });
    let active = true;
    // sha256sum knows no file klab wrote: the unit on the VM is someone else's.
    const host = new FakeHost('master', (argv) =>
      argv[0] === 'systemctl' && argv[1] === 'is-active'
        ? { exitCode: active ? 0 : 3, stdout: active ? 'active\n' : 'inactive\n' }
        : undefined,
    );
    let now = 0;
    const spec = { ...twoVmSpec(), timeouts: { ...twoVmSpec().timeouts, health: 30 } };
    const ctx = testStepContext(
      spec,
      { master: host },
      {
        clock: {
          now: () => now,
          sleep: async (ms) => {
            now += ms;
          },
        },
      },
    );
    const vm = spec.vms[0];
    if (!vm || !step.settle) throw new Error('no VM or no settle');
    const error = (await step.verify(ctx, vm).catch((e: unknown) => e)) as KlabError;
    expect(error.message).toBe('etcd on master: /etc/systemd/system/etcd.service differs');
    await step.settle(ctx, vm);
    expect(now).toBe(0);
    active = false;
    const stopped = (await step.settle(ctx, vm).catch((e: unknown) => e)) as KlabError;
    expect(stopped.code).toBe('KLAB_TIMEOUT');
    expect(stopped.message).toContain('etcd is not running');
    expect(now).toBeGreaterThanOrEqual(30_000);
  });

  it('a step that can fail at once still waits for other problems, without an extra look', async () => {
    expect(isFileDiffers('kube-apiserver is not running')).toBe(false);
    expect(isFileDiffers(fileDiffers('/etc/kubernetes/kubelet-config.yaml'))).toBe(true);
    const run = slowStep(2, 'kube-apiserver is not running', undefined, isFileDiffers);
    await run.verify();
    expect(run.calls()).toBe(3);
    expect(run.elapsed()).toBeGreaterThan(0);
  });

  it('a part that is not alive gets no extension', async () => {
    const run = slowStep(1000, 'kube-apiserver is not running', apiserverStillStarting);
    const error = await run.verify().catch((e: unknown) => e);
    expect((error as KlabError).code).toBe('KLAB_TIMEOUT');
    expect(run.elapsed()).toBeLessThanOrEqual(60_000 + 3_000);
    expect(run.events.some((event) => event.code === 'STEP_SLOW')).toBe(false);
  });

  it('a node whose CSR waits while kube-controller-manager restarts is slow; no CSR, a denied one, or a settled approver is not', async () => {
    expect(bootstrapPending(['no client certificate from TLS bootstrap yet'])).toBe(true);
    expect(
      bootstrapPending([
        'no client certificate from TLS bootstrap yet',
        'node node1 is not registered',
      ]),
    ).toBe(true);
    expect(bootstrapPending(['kubelet is not running'])).toBe(false);
    expect(bootstrapPending([])).toBe(false);

    const pkiDir = await mkdtemp(path.join(os.tmpdir(), 'klab-csr-'));
    await writeFile(
      path.join(pkiDir, 'bootstrap-tokens.json'),
      JSON.stringify([{ id: 'abc123', secret: '0123456789abcdef', node: 'node1' }]),
    );
    const csr = (user: string, conditions: { type: string }[] = []) => ({
      spec: { username: user, signerName: 'kubernetes.io/kube-apiserver-client-kubelet' },
      status: conditions.length ? { conditions } : {},
    });
    const judge = async (items: unknown[], controllerManager: string, uptime = '1000.0 900.0') => {
      const spec = twoVmSpec();
      const master = new FakeHost('master', (argv) => {
        if (argv[0] === 'systemctl') return { stdout: controllerManager };
        if (argv[0] === 'cat' && argv[1] === '/proc/uptime') return { stdout: uptime };
        return undefined;
      });
      const ctx = testStepContext(
        spec,
        { master },
        {
          pkiDir,
          adminKubectl: async () => ({
            exitCode: 0,
            stdout: JSON.stringify({ items }),
            stderr: '',
          }),
        },
      );
      const node1 = spec.vms.find((vm) => vm.name === 'node1');
      if (!node1) throw new Error('no node1');
      return csrAwaitsApprover(ctx, node1);
    };
    // Monotonic timestamps in microseconds; the VM is up 1000 s.
    const restarting = 'NRestarts=8\nActiveState=active\nActiveEnterTimestampMonotonic=950000000\n';
    const settled = 'NRestarts=0\nActiveState=active\nActiveEnterTimestampMonotonic=100000000\n';
    expect(await judge([csr('system:bootstrap:abc123')], restarting)).toBe(
      'its CSR waits for kube-controller-manager (active, 8 restart(s), up 50 s)',
    );
    // Just started, no restarts yet: still coming up.
    expect(
      await judge(
        [csr('system:bootstrap:abc123')],
        'NRestarts=0\nActiveState=activating\nActiveEnterTimestampMonotonic=0\n',
      ),
    ).toMatch(/activating/);
    // Never asked (another node's CSR only), denied, or an approver settled for 15 min: broken.
    expect(await judge([csr('system:bootstrap:zzz999')], restarting)).toBeUndefined();
    expect(
      await judge([csr('system:bootstrap:abc123', [{ type: 'Denied' }])], restarting),
    ).toBeUndefined();
    expect(await judge([csr('system:bootstrap:abc123')], settled)).toBeUndefined();
  });

  it('counts an API server that does not answer in time during the join as slow, and a refusal of rights as broken', () => {
    expect(
      apiserverBusy(
        'Unable to connect to the server: net/http: request canceled (Client.Timeout exceeded while awaiting headers)\n',
      ),
    ).toMatch(/^the API server does not answer in time while the node joins \(Unable to connect/);
    expect(
      apiserverBusy(
        'The connection to the server 192.168.121.10:6443 was refused - did you specify the right host or port?',
      ),
    ).toMatch(/does not answer in time/);
    expect(
      apiserverBusy('Error from server (Forbidden): certificatesigningrequests is forbidden'),
    ).toBe(undefined);
    expect(apiserverBusy('')).toBeUndefined();
  });
});
