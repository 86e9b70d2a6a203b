import { describe, expect, it } from 'vitest';
import type { StepContext } from '../../../provision/lib/step.js';
import {
  CHECKS,
  findDeployment,
  leaderChangesFromMetrics,
  readyEndpointAddresses,
  rolloutProgress,
  runChecks,
  stoppedUnits,
  transientApiError,
} from '../../../src/checks/index.js';
import { KlabError } from '../../../src/model/errors.js';
import { type Clock, type KlabEvent, nullSink } from '../../../src/model/events.js';
import { clusterTuning } from '../../../src/model/tuning.js';
import { TEST_APP } from '../../../src/render/manifests.js';
import { installProfile } from '../../../src/stacks/install.js';
import { FakeHost, type Handler } from '../../helpers/fake-host.js';
import { twoVmSpec } from '../../helpers/specs.js';

/** A clock whose sleep moves time on at once: waits run in no real time. */
function fakeClock(): Clock {
  let now = 0;
  return {
    now: () => now,
    sleep: async (ms) => {
      now += ms;
    },
  };
}

function context(handler: Handler, check = 60): { ctx: StepContext; hosts: FakeHost[] } {
  const base = twoVmSpec();
  const spec = { ...base, timeouts: { ...base.timeouts, check } };
  const hosts = spec.vms.map((vm) => new FakeHost(vm.name, handler));
  const ctx: StepContext = {
    spec,
    sink: nullSink,
    clock: fakeClock(),
    host: (name) => {
      const host = hosts.find((entry) => entry.name === name);
      if (!host) throw new Error(`no host ${name}`);
      return host;
    },
    provisionFile: async () => '',
    profile: installProfile('debian'),
    tuning: clusterTuning(spec, 'tcg'),
    pkiDir: '/nonexistent',
    artifactFile: () => '',
  };
  return { ctx, hosts };
}

const check = (id: string) => {
  const found = CHECKS.find((entry) => entry.id === id);
  if (!found) throw new Error(`no check ${id}`);
  return found;
};

const endpoints = (ips: string[]) =>
  JSON.stringify({ subsets: ips.length ? [{ addresses: ips.map((ip) => ({ ip })) }] : [] });

describe('verify helpers', () => {
  it('counts only ready Endpoints addresses', () => {
    expect(
      readyEndpointAddresses(
        JSON.stringify({
          subsets: [
            { addresses: [{ ip: '172.30.1.2' }], notReadyAddresses: [{ ip: '172.30.2.2' }] },
          ],
        }),
      ),
    ).toEqual(['172.30.1.2']);
    expect(readyEndpointAddresses('{}')).toEqual([]);
  });

  it("reads etcd's leader-change counter from /metrics", () => {
    const metrics =
      '# HELP etcd_server_leader_changes_seen_total ...\n# TYPE etcd_server_leader_changes_seen_total counter\netcd_server_leader_changes_seen_total 3\n';
    expect(leaderChangesFromMetrics(metrics)).toBe(3);
    expect(leaderChangesFromMetrics('nothing here')).toBeUndefined();
  });
});

describe('the ClusterIP check waits for what it depends on', () => {
  it('waits for the Endpoints, then for kube-proxy on every VM, and says how long', async () => {
    let endpointReads = 0;
    let curls = 0;
    const { ctx } = context((argv) => {
      const line = argv.join(' ');
      if (line.includes('jsonpath={.spec.clusterIP}')) return { stdout: '10.254.7.7' };
      if (line.includes(`get endpoints ${TEST_APP}`)) {
        endpointReads += 1;
        // The endpoints controller is slow: the first reads find no address.
        return { stdout: endpoints(endpointReads < 4 ? [] : ['172.30.9.2']) };
      }
      if (argv[0] === 'curl') {
        curls += 1;
        // kube-proxy has not programmed the Service for the first tries.
        if (curls < 3) return { exitCode: 7, stderr: 'curl: (7) Failed to connect: refused' };
        return { stdout: 'klab test app\nserved by: php-apache-1\n\n200' };
      }
      return undefined;
    });
    const [result] = await runChecks(ctx, [check('cluster-ip')]);
    expect(result?.ok).toBe(true);
    expect(result?.detail).toMatch(/^10\.254\.7\.7:80 from 2 VMs; waited \d+ s$/);
    expect(result?.waitedS).toBeGreaterThan(0);
    expect(endpointReads).toBe(4);
  });

  it('shows why it is still waiting, as progress of the check', async () => {
    let reads = 0;
    const { ctx } = context((argv) => {
      if (argv.join(' ').includes('get componentstatuses')) {
        reads += 1;
        const healthy = reads > 1;
        return {
          stdout: JSON.stringify({
            items: [
              {
                metadata: { name: 'controller-manager' },
                conditions: [
                  { type: 'Healthy', status: healthy ? 'True' : 'False', error: 'timeout' },
                ],
              },
            ],
          }),
        };
      }
      if (argv[0] === 'systemctl') return { stdout: 'active\nactive\n' };
      return undefined;
    });
    const events: KlabEvent[] = [];
    const [result] = await runChecks({ ...ctx, sink: { emit: (event) => events.push(event) } }, [
      check('components'),
    ]);
    expect(result?.ok).toBe(true);
    const updates = events.flatMap((event) => (event.kind === 'task-update' ? [event.text] : []));
    expect(updates).toEqual([
      expect.stringMatching(/^waiting for componentstatuses all healthy: controller-manager/),
    ]);
  });

  it('an answer that is not the test app (a 404 from elsewhere) does not pass', async () => {
    const { ctx } = context((argv) => {
      const line = argv.join(' ');
      if (line.includes('jsonpath={.spec.clusterIP}')) return { stdout: '10.254.7.7' };
      if (line.includes(`get endpoints ${TEST_APP}`)) return { stdout: endpoints(['172.30.9.2']) };
      if (argv[0] === 'curl') return { stdout: '404 page not found\n404' };
      return undefined;
    }, 20);
    const failure = await runChecks(ctx, [check('cluster-ip')]).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(KlabError);
    const klab = failure as KlabError;
    expect(klab.code).toBe('KLAB_VERIFY_FAILED');
    expect(klab.details[0]).toMatch(
      // The VMs wait side by side on one fake clock: either may reach the deadline first.
      /kube-proxy on (master|node1) forwards 10\.254\.7\.7:80 to the test app: not reached within 20 s \((master|node1) -> http:\/\/10\.254\.7\.7\/: HTTP 404\)/,
    );
  });

  it('fails with the named wait when the Endpoints never come', async () => {
    const { ctx } = context((argv) => {
      const line = argv.join(' ');
      if (line.includes('jsonpath={.spec.clusterIP}')) return { stdout: '10.254.7.7' };
      if (line.includes(`get endpoints ${TEST_APP}`)) return { stdout: endpoints([]) };
      return undefined;
    }, 30);
    const failure = (await runChecks(ctx, [check('cluster-ip')]).catch(
      (e: unknown) => e,
    )) as KlabError;
    expect(failure.details[0]).toContain(
      `Endpoints of klab-verify/${TEST_APP}: 1 ready address(es): not reached within 30 s (0 ready address(es))`,
    );
  });
});

describe('the cluster DNS check', () => {
  const pods = JSON.stringify({
    items: [
      {
        metadata: { name: 'php-apache-1' },
        spec: { nodeName: 'node1' },
        status: { phase: 'Running', podIP: '172.30.9.2' },
      },
    ],
  });
  const deployed = {
    service: { stdout: '10.254.0.10' },
    endpoints: { stdout: endpoints(['172.30.9.5']) },
  };
  let dns: {
    service: { stdout?: string; stderr?: string; exitCode?: number };
    endpoints: { stdout: string };
  } = deployed;
  const dnsContext = (answer: (name: string, tries: number) => string, check = 60) => {
    let tries = 0;
    const asked: string[] = [];
    const made = context((argv) => {
      const line = argv.join(' ');
      if (line.includes('get service kube-dns')) return dns.service;
      if (line.includes('get endpoints kube-dns')) return dns.endpoints;
      if (line.includes('jsonpath={.spec.clusterIP}')) return { stdout: '10.254.7.7' };
      if (line.includes(`get pods -l app=${TEST_APP}`)) return { stdout: pods };
      if (argv[0] === 'curl') {
        const url = argv.at(-1) ?? '';
        asked.push(url);
        const name = new URL(url).searchParams.get('name') ?? '';
        tries += 1;
        return { stdout: `${answer(name, tries)}\n\n200` };
      }
      if (argv[0] === 'systemctl') return { stdout: 'active\nactive\nactive\n' };
      return undefined;
    }, check);
    return { ...made, asked };
  };

  it('passes when a pod resolves kubernetes.default and the test app by short name to their ClusterIPs', async () => {
    const { ctx, asked } = dnsContext((name, tries) => {
      // CoreDNS has not synced the Services yet on the first try.
      if (tries === 1) return `${name} unresolved`;
      return name === 'kubernetes.default' ? `${name} 10.254.0.1` : `${name} 10.254.7.7`;
    });
    const [result] = await runChecks(ctx, [check('dns')]);
    expect(result?.ok).toBe(true);
    expect(result?.detail).toMatch(
      /^kubernetes\.default -> 10\.254\.0\.1, php-apache -> 10\.254\.7\.7 in php-apache-1 \(node1\), by CoreDNS at 10\.254\.0\.10/,
    );
    expect(asked).toContain('http://172.30.9.2/dns.php?name=kubernetes.default');
  });

  it('says what is missing before asking a pod: no kube-dns Service, or no ready CoreDNS behind it', async () => {
    try {
      dns = {
        service: {
          exitCode: 1,
          stderr: 'Error from server (NotFound): services "kube-dns" not found',
        },
        endpoints: { stdout: endpoints([]) },
      };
      const { ctx, asked } = dnsContext((name) => `${name} unresolved`, 20);
      const missing = (await runChecks(ctx, [check('dns')]).catch((e: unknown) => e)) as KlabError;
      expect(missing.details[0]).toContain(
        'no Service kube-system/kube-dns: the cluster DNS is not deployed',
      );
      expect(asked).toEqual([]);
      dns = { service: { stdout: '10.254.0.10' }, endpoints: { stdout: endpoints([]) } };
      const { ctx: later } = dnsContext((name) => `${name} unresolved`, 20);
      const empty = (await runChecks(later, [check('dns')]).catch((e: unknown) => e)) as KlabError;
      expect(empty.details[0]).toContain('has no ready endpoint: no CoreDNS pod is ready');
    } finally {
      dns = deployed;
    }
  });

  it('fails naming the wrong answer: a name resolved to another address is no pass', async () => {
    const { ctx } = dnsContext((name) => `${name} 93.184.216.34`, 20);
    const failure = (await runChecks(ctx, [check('dns')]).catch((e: unknown) => e)) as KlabError;
    expect(failure.code).toBe('KLAB_VERIFY_FAILED');
    expect(failure.details[0]).toContain(
      'php-apache-1 resolved "kubernetes.default 93.184.216.34", not 10.254.0.1',
    );
  });
});

describe('the kubelet-api check', () => {
  it('a kubelet that keeps refusing the apiserver past its 30 s cache fails it, naming the lesson', async () => {
    let polls = 0;
    const { ctx } = context((argv) => {
      if (argv.join(' ').includes('/proxy/healthz')) {
        polls += 1;
        return {
          exitCode: 1,
          stderr:
            'Error from server (Forbidden): Forbidden (user=kube-apiserver-kubelet-client, verb=get, resource=nodes, subresource=proxy)',
        };
      }
      return undefined;
    }, 300);
    const started = ctx.clock.now();
    const failure = (await runChecks(ctx, [check('kubelet-api')]).catch(
      (e: unknown) => e,
    )) as KlabError;
    expect(failure.details[0]).toContain(
      'node1 refuses kube-apiserver: Error from server (Forbidden)',
    );
    expect(failure.details[0]).toContain('kubelet-api-forbidden');
    // Not the whole timeouts.check (300 s): the refusal cache, then a verdict.
    expect(ctx.clock.now() - started).toBeGreaterThanOrEqual(35_000);
    expect(ctx.clock.now() - started).toBeLessThan(60_000);
    expect(polls).toBeGreaterThan(1);
  });

  it('waits out a kubelet that does not answer yet, and passes on ok', async () => {
    let polls = 0;
    const { ctx } = context((argv) => {
      if (argv.join(' ').includes('/proxy/healthz')) {
        polls += 1;
        return polls < 3 ? { exitCode: 1, stderr: 'context deadline exceeded' } : { stdout: 'ok' };
      }
      return undefined;
    });
    const [result] = await runChecks(ctx, [check('kubelet-api')]);
    expect(result?.ok).toBe(true);
    expect(result?.detail).toMatch(/^1 kubelet\(s\) answer kube-apiserver; waited \d+ s$/);
  });
});

describe('broken is told from slow', () => {
  it('a stopped unit the check depends on fails it at once, with how to start it', async () => {
    let polls = 0;
    const { ctx } = context((argv) => {
      if (argv.includes('--raw')) {
        polls += 1;
        return { exitCode: 1, stderr: 'The connection to the server was refused' };
      }
      if (argv[0] === 'systemctl' && argv[1] === 'is-active') {
        return { exitCode: 3, stdout: 'inactive\n' };
      }
      return undefined;
    }, 300);
    const started = ctx.clock.now();
    const failure = (await runChecks(ctx, [check('apiserver')]).catch(
      (e: unknown) => e,
    )) as KlabError;
    expect(failure.details[0]).toContain(
      'kube-apiserver /readyz: broken, not slow: kube-apiserver on master is stopped and will not come back by itself',
    );
    expect(polls).toBe(1);
    expect(ctx.clock.now() - started).toBeLessThan(5000);
  });

  it('reads systemctl is-active: inactive and failed are stopped; activating (a restart) is not', () => {
    expect(stoppedUnits(['a', 'b', 'c', 'd'], 'active\nactivating\nfailed\ninactive\n')).toEqual([
      'c',
      'd',
    ]);
  });
});

describe('the etcd check', () => {
  it('reports the leader changes each member has seen, from one metrics line', async () => {
    const { ctx, hosts } = context((argv) => {
      if (argv.includes('endpoint')) return { stderr: 'https://10.77.0.10:2379 is healthy: ok\n' };
      if (argv[0] === 'sh') return { stdout: 'etcd_server_leader_changes_seen_total 2\n' };
      return undefined;
    });
    const [result] = await runChecks(ctx, [check('etcd')]);
    expect(result?.detail).toBe(
      '1/1 members healthy; leader changes seen since each member started: master 2 (raft heartbeat 1000 ms, election 10000 ms)',
    );
    // The metrics page is filtered on the VM: the script is fixed, the paths are its arguments.
    const call = hosts[0]?.calls.find((entry) => entry.argv[0] === 'sh');
    expect(call?.argv.slice(0, 4)).toEqual([
      'sh',
      '-c',
      'curl -sS --max-time 10 "$@" | grep "^etcd_server_leader_changes_seen_total "',
      'sh',
    ]);
    // A commit may take longer than etcdctl's default 5 s on a loaded TCG host: one election
    // timeout (10 s under TCG) before a member counts as unhealthy.
    const health = hosts[0]?.calls.find((entry) => entry.argv.includes('health'));
    expect(health?.argv).toContain('--command-timeout=10s');
  });
});

describe('checks that depend on a failed check are not run', () => {
  it('reports them as not run, naming what failed, and counts them apart', async () => {
    const { ctx, hosts } = context((argv) => {
      if (argv.includes('--raw')) return { exitCode: 1, stderr: 'connection refused' };
      return undefined;
    }, 10);
    const failure = (await runChecks(ctx, [
      check('apiserver'),
      check('nodes'),
      check('rollout'),
    ]).catch((e: unknown) => e)) as KlabError;
    expect(failure.message).toBe('1 of 3 cluster checks failed (2 more not run)');
    expect(failure.details[1]).toBe('every node is Ready: not run: needs apiserver, which failed');
    expect(failure.details[2]).toBe(
      'test app, Traefik ingress and cluster DNS deployed and rolled out: not run: needs nodes, which failed',
    );
    // Nothing was applied to a cluster whose apiserver is down.
    expect(hosts.flatMap((host) => host.commands()).some((cmd) => cmd.includes('apply'))).toBe(
      false,
    );
  });
});

describe('a rollout wait on a starved API server', () => {
  const TIMEOUT =
    'Error from server (Timeout): the server was unable to return a response in the time allotted, but may still be processing the request (get deployments.apps php-apache)';

  it('tells "ask again" answers from refusals', () => {
    expect(transientApiError(TIMEOUT)).toBe(true);
    expect(transientApiError('Error from server: etcdserver: request timed out')).toBe(true);
    expect(
      transientApiError(
        'The connection to the server 192.168.213.10:6443 was refused - did you specify the right host or port?',
      ),
    ).toBe(false);
    expect(transientApiError('dial tcp 192.168.213.10:6443: connect: connection refused')).toBe(
      true,
    );
    expect(transientApiError('error: deployment "php-apache" exceeded its progress deadline')).toBe(
      false,
    );
    expect(transientApiError('Error from server (NotFound): deployments.apps "x" not found')).toBe(
      false,
    );
  });

  it('asks again after a server timeout, within timeouts.check, and passes once rolled out', async () => {
    const calls: string[][] = [];
    const { ctx } = context(() => undefined, 300);
    const answers = [
      { exitCode: 1, stdout: '', stderr: TIMEOUT },
      { exitCode: 1, stdout: '', stderr: TIMEOUT },
      { exitCode: 0, stdout: 'deployment "php-apache" successfully rolled out', stderr: '' },
    ];
    ctx.adminKubectl = async (args) => {
      calls.push([...args]);
      return answers.shift() ?? { exitCode: 0, stdout: '', stderr: '' };
    };
    await findDeployment('test-app')?.rollout(ctx);
    expect(calls).toHaveLength(3);
    // Each try gets only the time left of timeouts.check.
    expect(calls[0]?.at(-1)).toBe('--timeout=300s');
    expect(calls[1]?.at(-1)).toBe('--timeout=295s');
  });

  it('fails at once on a refusal, and at the deadline after timeouts, naming them', async () => {
    const { ctx } = context(() => undefined, 30);
    ctx.adminKubectl = async () => ({
      exitCode: 1,
      stdout: '',
      stderr: 'error: deployment "php-apache" exceeded its progress deadline',
    });
    await expect(findDeployment('test-app')?.rollout(ctx)).rejects.toThrow(
      /exceeded its progress deadline/,
    );
    let tries = 0;
    ctx.adminKubectl = async () => {
      tries += 1;
      return { exitCode: 1, stdout: '', stderr: TIMEOUT };
    };
    await expect(findDeployment('test-app')?.rollout(ctx)).rejects.toThrow(
      /not rolled out within 30 s \(timeouts\.check\), after \d+ API server timeout\(s\)/,
    );
    expect(tries).toBeGreaterThan(1);
    expect(tries).toBeLessThanOrEqual(7);
  });

  it('applies the manifest again when the API server says "resource quota evaluation timed out"', async () => {
    const { ctx } = context(() => undefined, 300);
    const seen: string[][] = [];
    const answers = [
      {
        exitCode: 1,
        stdout: 'namespace/klab-verify created',
        stderr:
          'Error from server (InternalError): error when creating "STDIN": Internal error occurred: resource quota evaluation timed out',
      },
      { exitCode: 0, stdout: 'deployment.apps/php-apache created', stderr: '' },
    ];
    ctx.adminKubectl = async (args) => {
      seen.push([...args]);
      return answers.shift() ?? { exitCode: 0, stdout: '', stderr: '' };
    };
    await findDeployment('test-app')?.apply(ctx);
    expect(seen).toEqual([
      ['apply', '-f', '-'],
      ['apply', '-f', '-'],
    ]);
    ctx.adminKubectl = async () => ({
      exitCode: 1,
      stdout: '',
      stderr: 'error: error validating "STDIN": error validating data: unknown field',
    });
    await expect(findDeployment('test-app')?.apply(ctx)).rejects.toThrow(/unknown field/);
  });
});

describe('a rollout that runs out of time: slow or broken', () => {
  const pod = (name: string, container: object, extra: object = {}) => ({
    metadata: { name },
    status: { phase: 'Running', containerStatuses: [container], ...extra },
  });
  const pods = (...items: object[]) => JSON.stringify({ items });
  const READY = { ready: true, state: { running: {} } };
  const STARTING = { ready: false, state: { running: {} } };

  it('pods still starting on a loaded host are slow, with how far they got', () => {
    const verdict = rolloutProgress(
      pods(
        pod('traefik-ingress-52bwj', READY),
        pod('traefik-ingress-d92lk', STARTING),
        pod('traefik-ingress-pkp2x', {
          ready: false,
          state: { waiting: { reason: 'ContainerCreating' } },
        }),
        pod('php-apache-1', READY),
      ),
      'traefik-ingress',
    );
    expect(verdict).toEqual({
      slow: true,
      said: '1 of 3 pod(s) ready; starting: traefik-ingress-d92lk running, not ready yet, traefik-ingress-pkp2x ContainerCreating',
    });
  });

  it('pods stuck where waiting does not help are broken, and the reason is said', () => {
    const stuck = (container: object, extra: object = {}) =>
      rolloutProgress(
        pods(pod('php-apache-1', READY), pod('php-apache-2', container, extra)),
        'php-apache',
      );
    expect(stuck({ ready: false, state: { waiting: { reason: 'ErrImageNeverPull' } } })).toEqual({
      slow: false,
      said: 'php-apache-2: ErrImageNeverPull',
    });
    // Docker timing out on a starved node: the kubelet tries again, so it is still starting.
    expect(
      stuck({ ready: false, state: { waiting: { reason: 'CreateContainerError' } } }).slow,
    ).toBe(true);
    expect(stuck({ ready: false, state: { waiting: { reason: 'CrashLoopBackOff' } } }).slow).toBe(
      false,
    );
    expect(stuck({ ready: false, restartCount: 6, state: { running: {} } }).said).toContain(
      'restarted 6 times',
    );
    expect(
      stuck(STARTING, {
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable' }],
      }).said,
    ).toBe('php-apache-2 cannot be scheduled (Unschedulable)');
    expect(rolloutProgress(pods(pod('coredns-1', READY)), 'php-apache').said).toContain(
      'no pod of php-apache exists',
    );
    expect(rolloutProgress('not json', 'php-apache').slow).toBe(false);
  });

  it('waits once more, twice as long, while the pods start; then fails naming the limit', async () => {
    const events: KlabEvent[] = [];
    const { ctx } = context(() => undefined, 100);
    ctx.sink = { emit: (event) => events.push(event) };
    const starting = pods(pod('php-apache-1', STARTING));
    const asked: string[][] = [];
    ctx.adminKubectl = async (args) => {
      asked.push([...args]);
      if (args.includes('pods')) return { exitCode: 0, stdout: starting, stderr: '' };
      await ctx.clock.sleep(Number(args.at(-1)?.replace(/\D/g, '')) * 1000);
      return { exitCode: 1, stdout: '', stderr: 'error: timed out waiting for the condition' };
    };
    await expect(findDeployment('test-app')?.rollout(ctx)).rejects.toThrow(
      /not rolled out within 300 s \(timeouts\.check, and twice that again as it was starting\)/,
    );
    expect(asked.filter((args) => args.includes('rollout')).map((args) => args.at(-1))).toEqual([
      '--timeout=100s',
      '--timeout=200s',
    ]);
    expect(events.filter((event) => event.code === 'CHECK_SLOW')).toHaveLength(1);

    // A stuck pod ends the wait at the first limit, with its reason.
    ctx.adminKubectl = async (args) =>
      args.includes('pods')
        ? {
            exitCode: 0,
            stdout: pods(
              pod('php-apache-1', {
                ready: false,
                state: { waiting: { reason: 'ErrImageNeverPull' } },
              }),
            ),
            stderr: '',
          }
        : { exitCode: 1, stdout: '', stderr: 'error: timed out waiting for the condition' };
    await expect(findDeployment('test-app')?.rollout(ctx)).rejects.toThrow(
      /within 100 s \(timeouts\.check\): error: timed out waiting for the condition; php-apache-1: ErrImageNeverPull/,
    );
  });
});
