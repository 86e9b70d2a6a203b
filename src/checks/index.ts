/**
 * `klab verify`: is the lab a working cluster? The tutorial's own check, made repeatable:
 * etcd, the control plane, nodes that joined by TLS bootstrap, Secrets encrypted at rest,
 * then the PHP/Apache test app by pod IP and ClusterIP from every VM and through the Traefik
 * ingress on every node IP from the host. Every check runs and is reported; any failure
 * fails the command with the list.
 */

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { etcdctl, etcdHealthArgs, kubectl } from '../../provision/lib/cluster.js';
import { waitFor } from '../../provision/lib/guest.js';
import { healthzProblem, nodeReady, unhealthyComponents } from '../../provision/lib/probes.js';
import type { StepContext } from '../../provision/lib/step.js';
import { httpGet } from '../adapters/http.js';
import { KlabError } from '../model/errors.js';
import { output, task } from '../model/events.js';
import { GUEST, KUBELET_CERT_DIR } from '../model/guest-paths.js';
import type { VmPlan } from '../model/spec.js';
import {
  clusterDnsIp,
  etcdMembers,
  firstEtcdMember,
  firstMaster,
  placed,
} from '../model/topology.js';
import { inspectCertificate, signedBy } from '../pki/inspect.js';
import { kubernetesServiceIp } from '../pki/plan.js';
import {
  CLUSTER_DNS,
  CLUSTER_DNS_SERVICE,
  INGRESS_HOST,
  renderClusterDns,
  renderIngress,
  renderTestApp,
  TEST_APP,
  VERIFY_NAMESPACE,
} from '../render/manifests.js';

export interface CheckResult {
  /** Stable id (etcd, apiserver, ...), for tests, benchmarks and --json. */
  id: string;
  name: string;
  ok: boolean;
  detail: string;
  /** How long the check waited for what it depends on (Endpoints, a rollout, a route). */
  waitedS: number;
  /** Not run, because a check it depends on failed. */
  skipped?: boolean;
  /**
   * passed; failed (a wrong answer); timed-out (what it waited for did not come within
   * timeouts.check: slow, or broken in a way klab cannot see); broken (a unit it needs is
   * stopped: it will not come by waiting); not-run (a check it needs failed).
   */
  outcome: 'passed' | 'failed' | 'timed-out' | 'broken' | 'not-run';
}

/** Units that must run on a VM for a check's subject to come: stopped means broken, not slow. */
export interface NeededUnits {
  vm: string;
  units: readonly string[];
}

/** `systemctl is-active A B` output -> the units that are stopped (not running, not restarting). */
export function stoppedUnits(units: readonly string[], isActiveOutput: string): string[] {
  const states = isActiveOutput.split('\n').map((line) => line.trim());
  return units.filter((_, index) => states[index] === 'inactive' || states[index] === 'failed');
}

/** Named, bounded waits for one check; remembers how long it waited in all. */
class CheckWaits {
  waitedMs = 0;
  /** Where a miss is shown while the check waits (the spinner, and the log file). */
  progress: (text: string) => void = () => {};
  constructor(private readonly ctx: StepContext) {}

  /**
   * Polls `probe` up to timeouts.check. Between failed polls it looks at the units the
   * result depends on: one that is stopped (Restart=always brings back anything that
   * crashed, so "inactive" means someone stopped it) will not come back by itself, and
   * the check fails at once instead of waiting minutes for nothing.
   */
  async until(
    what: string,
    vm: string,
    hint: string,
    probe: () => Promise<true | string>,
    needs: readonly NeededUnits[] = [],
  ): Promise<number> {
    let broken: { vm: string; unit: string } | undefined;
    const ms = await waitFor(
      this.ctx,
      { what, vm, timeoutMs: this.ctx.spec.timeouts.check * 1000, intervalMs: 2000, hint },
      async () => {
        const answer = await probe().catch((error: unknown) => (error as Error).message);
        if (answer === true) return true;
        broken = await this.firstStopped(needs);
        if (!broken) this.progress(`waiting for ${what}: ${firstLine(answer)}`);
        return broken ? true : answer;
      },
    );
    if (broken) {
      throw new KlabError(
        'KLAB_STEP_FAILED',
        `${what}: broken, not slow: ${broken.unit} on ${broken.vm} is stopped and will not come back by itself`,
        {
          vm: broken.vm,
          hint: `Start it: klab ssh ${broken.vm} -- sudo systemctl start ${broken.unit}`,
          data: { outcome: 'broken', unit: broken.unit },
        },
      );
    }
    this.waitedMs = Math.max(this.waitedMs, ms);
    return ms;
  }

  private async firstStopped(
    needs: readonly NeededUnits[],
  ): Promise<{ vm: string; unit: string } | undefined> {
    for (const need of needs) {
      if (need.units.length === 0) continue;
      const result = await this.ctx
        .host(need.vm)
        .run(['systemctl', 'is-active', ...need.units], { allowFailure: true });
      const [unit] = stoppedUnits(need.units, result.stdout);
      if (unit) return { vm: need.vm, unit };
    }
    return undefined;
  }
}

/** The first line of a probe's answer, short enough for a spinner. */
function firstLine(answer: string): string {
  const line = answer.trim().split('\n')[0] ?? '';
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

/** The same units on several VMs. */
function unitsOn(vms: readonly VmPlan[], units: readonly string[]): NeededUnits[] {
  return vms.map((vm) => ({ vm: vm.name, units }));
}

interface Check {
  id: string;
  name: string;
  /** Checks that must have passed first; when one failed this one is reported as not run. */
  needs?: readonly string[];
  /** Returns a one-line detail; throws (any error) when the check fails. */
  run(ctx: StepContext, waits: CheckWaits): Promise<string>;
}

function fail(message: string): never {
  throw new Error(message);
}

const KUBECTL_HINT =
  'Look at the control plane: klab ssh master -- sudo journalctl -u kube-apiserver -n 50';

async function podsOfTestApp(
  ctx: StepContext,
): Promise<{ name: string; ip: string; node: string }[]> {
  const result = await kubectl(ctx, [
    '-n',
    VERIFY_NAMESPACE,
    'get',
    'pods',
    '-l',
    `app=${TEST_APP}`,
    '-o',
    'json',
  ]);
  const list = JSON.parse(result.stdout) as {
    items: {
      metadata: { name: string; deletionTimestamp?: string };
      status: { podIP?: string; phase?: string };
      spec: { nodeName?: string };
    }[];
  };
  return list.items
    .filter((pod) => pod.status.phase === 'Running' && pod.status.podIP)
    .filter((pod) => !pod.metadata.deletionTimestamp)
    .map((pod) => ({
      name: pod.metadata.name,
      ip: pod.status.podIP ?? '',
      node: pod.spec.nodeName ?? '',
    }));
}

/** `kubectl get endpoints -o json` -> the addresses that are ready to serve. */
export function readyEndpointAddresses(json: string): string[] {
  const endpoints = JSON.parse(json) as { subsets?: { addresses?: { ip: string }[] }[] };
  return (endpoints.subsets ?? []).flatMap((subset) =>
    (subset.addresses ?? []).map((address) => address.ip),
  );
}

/**
 * A Service answers only once the endpoints controller has listed its ready pods, and
 * on a loaded host that can take minutes after the pods are ready: wait for it by name.
 */
async function waitForEndpoints(ctx: StepContext, waits: CheckWaits, want: number) {
  let addresses: string[] = [];
  await waits.until(
    `Endpoints of ${VERIFY_NAMESPACE}/${TEST_APP}: ${want} ready address(es)`,
    firstMaster(ctx.spec).name,
    'The endpoints controller runs in kube-controller-manager: klab ssh master -- sudo journalctl -u kube-controller-manager -n 50',
    async () => {
      const result = await kubectl(
        ctx,
        ['-n', VERIFY_NAMESPACE, 'get', 'endpoints', TEST_APP, '-o', 'json'],
        { allowFailure: true },
      );
      if (result.exitCode !== 0) return result.stderr.trim() || 'no Endpoints object yet';
      addresses = readyEndpointAddresses(result.stdout);
      return addresses.length >= want ? true : `${addresses.length} ready address(es)`;
    },
    [
      { vm: firstMaster(ctx.spec).name, units: ['kube-controller-manager'] },
      ...unitsOn(placed(ctx.spec, 'nodes'), ['kubelet']),
    ],
  );
  return addresses;
}

/** The test app Service's ClusterIP. */
async function testAppClusterIp(ctx: StepContext): Promise<string> {
  const svc = await kubectl(ctx, [
    '-n',
    VERIFY_NAMESPACE,
    'get',
    'service',
    TEST_APP,
    '-o',
    'jsonpath={.spec.clusterIP}',
  ]);
  return svc.stdout.trim();
}

/** curl from a VM; returns the body, or a reason string that a wait can show. */
async function curlFrom(ctx: StepContext, vm: string, url: string): Promise<string | Error> {
  const result = await ctx
    .host(vm)
    .run(['curl', '-sS', '--max-time', '10', '-w', '\n%{http_code}', url], { allowFailure: true });
  if (result.exitCode !== 0)
    return new Error(`${vm} -> ${url}: ${result.stderr.trim() || `curl exit ${result.exitCode}`}`);
  const lines = result.stdout.split('\n');
  const status = lines.pop() ?? '';
  if (status !== '200') return new Error(`${vm} -> ${url}: HTTP ${status}`);
  return lines.join('\n');
}

/**
 * Why nobody would answer at the cluster DNS address, before asking a pod (a lookup that
 * nobody answers takes a pod's resolver many seconds per search domain): no kube-dns
 * Service, another address than the kubelets', or no ready CoreDNS behind it.
 */
async function dnsServiceProblem(ctx: StepContext): Promise<string | undefined> {
  const want = clusterDnsIp(ctx.spec);
  const svc = await kubectl(
    ctx,
    [
      '-n',
      'kube-system',
      'get',
      'service',
      CLUSTER_DNS_SERVICE,
      '-o',
      'jsonpath={.spec.clusterIP}',
    ],
    { allowFailure: true },
  );
  if (svc.exitCode !== 0) {
    return /NotFound|not found/.test(svc.stderr)
      ? `no Service kube-system/${CLUSTER_DNS_SERVICE}: the cluster DNS is not deployed (pods' resolv.conf names ${want})`
      : svc.stderr.trim();
  }
  const ip = svc.stdout.trim();
  if (ip !== want) {
    return `Service kube-system/${CLUSTER_DNS_SERVICE} has ClusterIP ${ip}, but the kubelets give pods ${want} (clusterDNS)`;
  }
  const endpoints = await kubectl(
    ctx,
    ['-n', 'kube-system', 'get', 'endpoints', CLUSTER_DNS_SERVICE, '-o', 'json'],
    { allowFailure: true },
  );
  if (endpoints.exitCode !== 0 || readyEndpointAddresses(endpoints.stdout).length === 0) {
    return `Service kube-system/${CLUSTER_DNS_SERVICE} has no ready endpoint: no CoreDNS pod is ready behind it`;
  }
  return undefined;
}

/** etcd_server_leader_changes_seen_total of one member (since it started), from /metrics. */
export function leaderChangesFromMetrics(metrics: string): number | undefined {
  const match = /^etcd_server_leader_changes_seen_total\s+(\d+)/m.exec(metrics);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

async function leaderChanges(ctx: StepContext, member: VmPlan): Promise<number | undefined> {
  const pki = GUEST.etcdPki;
  // A fixed script with the arguments as "$@": only the one counter line comes back (the
  // whole /metrics page would flood the run's log).
  const result = await ctx
    .host(member.name)
    .run(
      [
        'sh',
        '-c',
        'curl -sS --max-time 10 "$@" | grep "^etcd_server_leader_changes_seen_total "',
        'sh',
        '--cacert',
        `${pki}/etcd-ca.crt`,
        '--cert',
        `${pki}/etcd-server-${member.name}.crt`,
        '--key',
        `${pki}/etcd-server-${member.name}.key`,
        `https://${member.ip}:2379/metrics`,
      ],
      { sudo: true, allowFailure: true },
    );
  return result.exitCode === 0 ? leaderChangesFromMetrics(result.stdout) : undefined;
}

/** An app `klab verify` deploys (and a lesson's solution can): apply, then wait rolled out. */
export interface Deployment {
  id: string;
  apply(ctx: StepContext): Promise<void>;
  /** Waits (timeouts.check) until it is rolled out; fails naming what is not. */
  rollout(ctx: StepContext): Promise<void>;
}

/**
 * Answers of a starved API server or etcd that say "ask again", not "no": `kubectl rollout
 * status` gives up at the first of them, so the wait goes on while time is left.
 */
export function transientApiError(output: string): boolean {
  return /the server was unable to return a response in the time allotted|Error from server \(Timeout\)|etcdserver: (request timed out|leader changed|too many requests)|connection refused|TLS handshake timeout|i\/o timeout|unexpected EOF|http2: server sent GOAWAY|ServiceUnavailable|the server is currently unable to handle the request|context deadline exceeded|resource quota evaluation timed out/.test(
    output,
  );
}

/**
 * Waiting reasons that do not clear by waiting: the pod needs a fix. Not CreateContainerError
 * or RunContainerError: a starved node's Docker times out with those, and the kubelet retries.
 */
const STUCK =
  /^(CrashLoopBackOff|ErrImageNeverPull|ErrImagePull|ImagePullBackOff|InvalidImageName|CreateContainerConfigError)$/;

interface PodState {
  metadata: { name: string };
  status?: {
    phase?: string;
    conditions?: { type: string; status: string; reason?: string }[];
    containerStatuses?: {
      ready: boolean;
      restartCount?: number;
      state?: { waiting?: { reason?: string }; running?: object };
    }[];
  };
}

/**
 * When a rollout wait ran out: are the workload's pods (named `<name>-...`) still starting
 * (slow: a loaded host), or stuck where waiting does not help (broken, with the reason)?
 */
export function rolloutProgress(podsJson: string, name: string): { slow: boolean; said: string } {
  let items: PodState[];
  try {
    items = (JSON.parse(podsJson) as { items?: PodState[] }).items ?? [];
  } catch {
    return { slow: false, said: 'the pods could not be read' };
  }
  const pods = items.filter((pod) => pod.metadata.name.startsWith(`${name}-`));
  if (pods.length === 0) {
    return {
      slow: false,
      said: `no pod of ${name} exists (is kube-controller-manager running? klab ssh master -- systemctl status kube-controller-manager)`,
    };
  }
  let ready = 0;
  const starting: string[] = [];
  for (const pod of pods) {
    const status = pod.status ?? {};
    const containers = status.containerStatuses ?? [];
    const unschedulable = status.conditions?.find(
      (c) => c.type === 'PodScheduled' && c.status === 'False',
    );
    if (unschedulable) {
      return {
        slow: false,
        said: `${pod.metadata.name} cannot be scheduled (${unschedulable.reason ?? 'PodScheduled=False'})`,
      };
    }
    if (status.phase === 'Failed') return { slow: false, said: `${pod.metadata.name} failed` };
    for (const container of containers) {
      const reason = container.state?.waiting?.reason ?? '';
      if (STUCK.test(reason)) return { slow: false, said: `${pod.metadata.name}: ${reason}` };
      if ((container.restartCount ?? 0) >= 5 && !container.ready) {
        return {
          slow: false,
          said: `${pod.metadata.name} restarted ${container.restartCount} times and is not ready`,
        };
      }
    }
    if (containers.length > 0 && containers.every((container) => container.ready)) {
      ready += 1;
    } else {
      const waiting = containers.find((container) => container.state?.waiting)?.state?.waiting;
      starting.push(
        `${pod.metadata.name} ${waiting?.reason ?? (containers.some((c) => c.state?.running) ? 'running, not ready yet' : (status.phase ?? 'Pending'))}`,
      );
    }
  }
  return {
    slow: true,
    said: `${ready} of ${pods.length} pod(s) ready${starting.length ? `; starting: ${starting.join(', ')}` : ''}`,
  };
}

async function rolloutOf(ctx: StepContext, namespace: string, what: string): Promise<void> {
  const limit = ctx.spec.timeouts.check;
  let deadline = ctx.clock.now() + limit * 1000;
  let retried = 0;
  let extended = false;
  for (;;) {
    const left = Math.max(1, Math.round((deadline - ctx.clock.now()) / 1000));
    const result = await kubectl(
      ctx,
      ['-n', namespace, 'rollout', 'status', what, `--timeout=${left}s`],
      { timeoutMs: (left + 60) * 1000, allowFailure: true },
    );
    if (result.exitCode === 0) return;
    const said = (result.stderr || result.stdout).trim().split('\n').pop() ?? '';
    if (transientApiError(said) && ctx.clock.now() + 5000 < deadline) {
      // The API server did not answer in time (a loaded host): slow, not broken; ask again.
      retried += 1;
      output(ctx.sink, 'klab', `${namespace}/${what}: ${said}; asking again`);
      await ctx.clock.sleep(5000);
      continue;
    }
    // Out of time: pods still starting are slow (wait once more, twice as long, and say
    // so); pods stuck on something waiting does not mend are broken (say why).
    let why = '';
    if (!extended && /timed out waiting/i.test(said)) {
      const pods = await kubectl(ctx, ['-n', namespace, 'get', 'pods', '-o', 'json'], {
        allowFailure: true,
      });
      const progress =
        pods.exitCode === 0
          ? rolloutProgress(pods.stdout, what.split('/').pop() ?? what)
          : undefined;
      if (progress?.slow) {
        extended = true;
        deadline = ctx.clock.now() + 2 * limit * 1000;
        ctx.sink.emit({
          kind: 'notice',
          code: 'CHECK_SLOW',
          level: 'warn',
          text: `${namespace}/${what} is slow, not broken, after ${limit} s (${progress.said}); klab waits up to ${2 * limit} s more. A loaded host or software emulation does this; raise timeouts.check in klab.yaml to wait longer from the start.`,
        });
        continue;
      }
      if (progress) why = `; ${progress.said}`;
    }
    fail(
      `${namespace}/${what} not rolled out within ${extended ? 3 * limit : limit} s (timeouts.check${extended ? ', and twice that again as it was starting' : ''})${retried ? `, after ${retried} API server timeout(s)` : ''}: ${said}${why}`,
    );
  }
}

/**
 * `kubectl apply` of a manifest (idempotent), asked again while the API server answers
 * "ask again" (a quota evaluation or a request timing out on a loaded host), up to
 * timeouts.check.
 */
async function applyPatiently(ctx: StepContext, manifest: string): Promise<void> {
  const deadline = ctx.clock.now() + ctx.spec.timeouts.check * 1000;
  for (;;) {
    const result = await kubectl(ctx, ['apply', '-f', '-'], {
      stdin: manifest,
      allowFailure: true,
    });
    if (result.exitCode === 0) return;
    const said = `${result.stdout}\n${result.stderr}`.trim();
    if (!transientApiError(said) || ctx.clock.now() + 5000 >= deadline) {
      fail(`kubectl apply failed: ${said.split('\n').pop() ?? ''}`);
    }
    output(ctx.sink, 'klab', `kubectl apply: ${said.split('\n').pop() ?? ''}; asking again`);
    await ctx.clock.sleep(5000);
  }
}

export const DEPLOYMENTS: readonly Deployment[] = [
  {
    id: 'test-app',
    async apply(ctx) {
      const replicas = placed(ctx.spec, 'nodes').length;
      await applyPatiently(ctx, renderTestApp({ profile: ctx.profile, replicas }));
    },
    rollout: (ctx) => rolloutOf(ctx, VERIFY_NAMESPACE, `deployment/${TEST_APP}`),
  },
  {
    id: 'ingress',
    async apply(ctx) {
      await applyPatiently(ctx, renderIngress(ctx.profile));
    },
    rollout: (ctx) => rolloutOf(ctx, 'kube-system', 'daemonset/traefik-ingress'),
  },
  {
    id: 'cluster-dns',
    async apply(ctx) {
      await applyPatiently(ctx, renderClusterDns(ctx.spec, ctx.profile));
    },
    rollout: (ctx) => rolloutOf(ctx, 'kube-system', `deployment/${CLUSTER_DNS}`),
  },
];

export function findDeployment(id: string): Deployment | undefined {
  return DEPLOYMENTS.find((deployment) => deployment.id === id);
}

/** How long a kubelet keeps a refusal from the apiserver (cacheUnauthorizedTTL 30 s), and a margin. */
const KUBELET_REFUSAL_CACHE_MS = 35_000;

export const CHECKS: readonly Check[] = [
  {
    id: 'etcd',
    name: 'etcd: every member healthy',
    async run(ctx, waits) {
      const members = etcdMembers(ctx.spec);
      let healthy = 0;
      await waits.until(
        `etcd: ${members.length} healthy member(s)`,
        firstEtcdMember(ctx.spec).name,
        'Look at etcd: klab ssh <member> -- sudo journalctl -u etcd -n 50',
        async () => {
          const result = await etcdctl(
            ctx,
            firstEtcdMember(ctx.spec),
            [
              `--endpoints=${members.map((vm) => `https://${vm.ip}:2379`).join(',')}`,
              ...etcdHealthArgs(ctx),
            ],
            { allowFailure: true },
          );
          // etcdctl prints one line per endpoint (to stderr); count endpoints, not lines.
          healthy = new Set(
            `${result.stdout}\n${result.stderr}`
              .split('\n')
              .filter((line) => /is healthy/.test(line))
              .map((line) => line.split(' ')[0]),
          ).size;
          return healthy === members.length
            ? true
            : (result.stderr || result.stdout).trim() || 'no answer';
        },
        unitsOn(members, ['etcd']),
      );
      const changes = await Promise.all(members.map((vm) => leaderChanges(ctx, vm)));
      const seen = members.map((vm, index) => `${vm.name} ${changes[index] ?? '?'}`).join(', ');
      return `${healthy}/${members.length} members healthy; leader changes seen since each member started: ${seen} (raft heartbeat ${ctx.tuning.etcdHeartbeatMs} ms, election ${ctx.tuning.etcdElectionMs} ms)`;
    },
  },
  {
    id: 'apiserver',
    name: 'kube-apiserver answers on its secure port',
    async run(ctx, waits) {
      const path = ctx.profile.kubernetesMinor >= 16 ? '/readyz' : '/healthz';
      await waits.until(
        `kube-apiserver ${path}`,
        firstMaster(ctx.spec).name,
        KUBECTL_HINT,
        async () => {
          const result = await kubectl(ctx, ['get', '--raw', path], { allowFailure: true });
          return result.stdout.trim() === 'ok'
            ? true
            : healthzProblem(result.stdout + result.stderr, path);
        },
        [{ vm: firstMaster(ctx.spec).name, units: ['kube-apiserver'] }],
      );
      return `${path} ok at https://${firstMaster(ctx.spec).ip}:6443`;
    },
  },
  {
    id: 'components',
    name: 'scheduler, controller manager and etcd report healthy',
    needs: ['apiserver'],
    async run(ctx, waits) {
      await waits.until(
        'componentstatuses all healthy',
        firstMaster(ctx.spec).name,
        KUBECTL_HINT,
        async () => {
          const result = await kubectl(ctx, ['get', 'componentstatuses', '-o', 'json'], {
            allowFailure: true,
          });
          if (result.exitCode !== 0) return result.stderr.trim();
          const bad = unhealthyComponents(result.stdout);
          return bad.length === 0 ? true : bad.join('; ');
        },
        [{ vm: firstMaster(ctx.spec).name, units: ['kube-controller-manager', 'kube-scheduler'] }],
      );
      return 'all healthy';
    },
  },
  {
    id: 'nodes',
    name: 'every node is Ready',
    needs: ['apiserver'],
    async run(ctx, waits) {
      const nodes = placed(ctx.spec, 'nodes');
      await waits.until(
        `${nodes.map((vm) => vm.name).join(', ')} Ready`,
        firstMaster(ctx.spec).name,
        'Look at the kubelet: klab ssh <node> -- sudo journalctl -u kubelet -n 50',
        async () => {
          const problems: string[] = [];
          for (const vm of nodes) {
            const result = await kubectl(ctx, ['get', 'node', vm.name, '-o', 'json'], {
              allowFailure: true,
            });
            if (result.exitCode !== 0) problems.push(`${vm.name} is not registered`);
            else {
              const ready = nodeReady(result.stdout);
              if (!ready.ready) problems.push(`${vm.name}: ${ready.reason}`);
            }
          }
          return problems.length === 0 ? true : problems.join('; ');
        },
        unitsOn(nodes, ['kubelet', 'docker']),
      );
      return nodes.map((vm) => vm.name).join(', ');
    },
  },
  {
    id: 'tls-bootstrap',
    name: 'kubelets joined by TLS bootstrap (client certificates signed by the lab CA)',
    needs: ['apiserver'],
    async run(ctx) {
      const ca = await readFile(path.join(ctx.pkiDir, 'ca.crt'), 'utf8');
      for (const vm of placed(ctx.spec, 'nodes')) {
        const pem = await ctx
          .host(vm.name)
          .readFile(`${KUBELET_CERT_DIR}/kubelet-client-current.pem`, { sudo: true })
          .catch(() => fail(`${vm.name} has no bootstrapped client certificate`));
        const certPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(
          pem,
        )?.[0];
        if (!certPem) fail(`${vm.name}: no certificate in kubelet-client-current.pem`);
        const info = inspectCertificate(certPem);
        if (!info.subject.includes(`CN=system:node:${vm.name}`))
          fail(`${vm.name}: subject is ${info.subject}`);
        if (!signedBy(certPem, ca))
          fail(`${vm.name}: its client certificate is not signed by the lab CA`);
      }
      const csrs = await kubectl(ctx, ['get', 'csr', '-o', 'name'], { allowFailure: true });
      const count = csrs.stdout.trim() ? csrs.stdout.trim().split('\n').length : 0;
      return `${placed(ctx.spec, 'nodes').length} node(s); kubectl get csr lists ${count} request(s) (approved ones are cleaned up after an hour)`;
    },
  },
  {
    id: 'kubelet-api',
    name: "kube-apiserver reaches every kubelet's API (what logs and exec use)",
    needs: ['nodes'],
    async run(ctx, waits) {
      const nodes = placed(ctx.spec, 'nodes');
      let refusal: string | undefined;
      let firstRefusal: number | undefined;
      await waits.until(
        `node proxy /healthz of ${nodes.map((vm) => vm.name).join(', ')}`,
        firstMaster(ctx.spec).name,
        'A 403 is RBAC (the apiserver user needs the kubelet API: lesson kubelet-api-forbidden); a 401 is the kubelet not trusting the lab CA (lesson kubelet-wrong-ca)',
        async () => {
          const problems: string[] = [];
          for (const vm of nodes) {
            const result = await kubectl(
              ctx,
              ['get', '--raw', `/api/v1/nodes/${vm.name}/proxy/healthz`],
              { allowFailure: true, timeoutMs: 30_000 },
            );
            if (result.stdout.trim() === 'ok') continue;
            const why = (result.stderr || result.stdout).trim() || 'no answer';
            // A kubelet that refuses the apiserver does not change its mind by waiting,
            // except for the refusal it remembers (30 s) after a fix: past that, broken.
            if (/Forbidden|Unauthorized|x509/i.test(why)) {
              firstRefusal ??= ctx.clock.now();
              if (ctx.clock.now() - firstRefusal >= KUBELET_REFUSAL_CACHE_MS) {
                refusal = `${vm.name} refuses kube-apiserver: ${why} (Forbidden: RBAC, see lesson kubelet-api-forbidden; Unauthorized: the kubelet's client CA, see lesson kubelet-wrong-ca)`;
                return true;
              }
            }
            problems.push(`${vm.name}: ${why}`);
          }
          return problems.length === 0 ? true : problems.join('; ');
        },
        unitsOn(nodes, ['kubelet']),
      );
      if (refusal) fail(refusal);
      return `${nodes.length} kubelet(s) answer kube-apiserver`;
    },
  },
  {
    id: 'encryption',
    name: 'Secrets are encrypted at rest in etcd',
    needs: ['apiserver', 'etcd'],
    async run(ctx) {
      const name = 'klab-verify-encryption';
      await kubectl(ctx, ['apply', '-f', '-'], {
        stdin: `${JSON.stringify({
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name, namespace: 'default' },
          stringData: { probe: 'klab' },
        })}\n`,
      });
      const raw = await etcdctl(
        ctx,
        firstEtcdMember(ctx.spec),
        ['get', `/registry/secrets/default/${name}`, '--print-value-only'],
        { quiet: true },
      );
      if (!raw.stdout.startsWith('k8s:enc:aescbc:v1:'))
        fail('the Secret is stored in plain text in etcd');
      return 'stored as k8s:enc:aescbc:v1';
    },
  },
  {
    id: 'rollout',
    name: 'test app, Traefik ingress and cluster DNS deployed and rolled out',
    needs: ['nodes'],
    async run(ctx, waits) {
      const replicas = placed(ctx.spec, 'nodes').length;
      const started = ctx.clock.now();
      for (const id of ['cluster-dns', 'ingress', 'test-app']) {
        await findDeployment(id)?.apply(ctx);
      }
      for (const id of ['test-app', 'ingress', 'cluster-dns']) {
        await findDeployment(id)?.rollout(ctx);
      }
      waits.waitedMs = ctx.clock.now() - started;
      await waitForEndpoints(ctx, waits, replicas);
      return `${replicas} replica(s) of ${ctx.profile.testAppImage.image}, Traefik ${ctx.profile.ingressImage.image}, CoreDNS ${ctx.profile.dnsImage.image}`;
    },
  },
  {
    id: 'pod-ip',
    name: 'test app by pod IP from every VM',
    needs: ['rollout'],
    async run(ctx, waits) {
      const pods = await podsOfTestApp(ctx);
      if (pods.length === 0) fail('no running test-app pod');
      // flanneld on each VM learns the other subnets from etcd; a new lease can lag.
      await Promise.all(
        ctx.spec.vms.map((vm) =>
          waits.until(
            `${vm.name} reaches every test-app pod by its IP`,
            vm.name,
            `Look at flannel: klab ssh ${vm.name} -- ip route; sudo journalctl -u flanneld -n 30`,
            async () => {
              for (const pod of pods) {
                const body = await curlFrom(ctx, vm.name, `http://${pod.ip}/`);
                if (body instanceof Error) return body.message;
                if (!body.includes(`served by: ${pod.name}`))
                  return `${vm.name} -> ${pod.ip}: answered by someone else`;
              }
              return true;
            },
            [{ vm: vm.name, units: ['flanneld'] }],
          ),
        ),
      );
      return `${pods.map((pod) => `${pod.ip} (${pod.node})`).join(', ')} from ${ctx.spec.vms.length} VMs`;
    },
  },
  {
    id: 'cluster-ip',
    name: 'test app by ClusterIP from every VM',
    needs: ['rollout'],
    async run(ctx, waits) {
      const ip = await testAppClusterIp(ctx);
      await waitForEndpoints(ctx, waits, placed(ctx.spec, 'nodes').length);
      // kube-proxy on each VM turns the Endpoints into iptables rules on its own schedule.
      await Promise.all(
        ctx.spec.vms.map((vm) =>
          waits.until(
            `kube-proxy on ${vm.name} forwards ${ip}:80 to the test app`,
            vm.name,
            `Look at kube-proxy: klab ssh ${vm.name} -- sudo journalctl -u kube-proxy -n 30; sudo iptables-save -t nat | grep ${TEST_APP}`,
            async () => {
              const body = await curlFrom(ctx, vm.name, `http://${ip}/`);
              if (body instanceof Error) return body.message;
              return body.includes('klab test app')
                ? true
                : `${vm.name} -> ${ip}: unexpected answer`;
            },
            [{ vm: vm.name, units: ['kube-proxy'] }],
          ),
        ),
      );
      return `${ip}:80 from ${ctx.spec.vms.length} VMs`;
    },
  },
  {
    id: 'dns',
    name: 'cluster DNS: a pod resolves kubernetes.default and the test app by name',
    needs: ['rollout'],
    async run(ctx, waits) {
      const pods = await podsOfTestApp(ctx);
      const pod = pods[0];
      if (!pod) fail('no running test-app pod');
      const testAppIp = await testAppClusterIp(ctx);
      // Short names: the pod's search domains (klab-verify.svc.cluster.local, svc.cluster.local)
      // must be there too, not only the nameserver.
      const expected: [string, string][] = [
        ['kubernetes.default', kubernetesServiceIp(ctx.spec)],
        [TEST_APP, testAppIp],
      ];
      const from = firstMaster(ctx.spec).name;
      const dnsIp = clusterDnsIp(ctx.spec);
      await waits.until(
        `${pod.name} resolves ${expected.map(([name]) => name).join(' and ')} through ${dnsIp}`,
        pod.node,
        `Look at CoreDNS: klab ssh master -- kubectl -n kube-system logs deploy/${CLUSTER_DNS}; and at the pod's resolv.conf: kubectl -n ${VERIFY_NAMESPACE} exec ${pod.name} -- cat /etc/resolv.conf`,
        async () => {
          const server = await dnsServiceProblem(ctx);
          if (server) return server;
          for (const [name, ip] of expected) {
            const body = await curlFrom(ctx, from, `http://${pod.ip}/dns.php?name=${name}`);
            if (body instanceof Error) return body.message;
            const answer = body.trim();
            if (answer !== `${name} ${ip}`) return `${pod.name} resolved "${answer}", not ${ip}`;
          }
          return true;
        },
        [{ vm: pod.node, units: ['kube-proxy', 'kubelet', 'docker'] }],
      );
      return `${expected.map(([name, ip]) => `${name} -> ${ip}`).join(', ')} in ${pod.name} (${pod.node}), by CoreDNS at ${dnsIp}`;
    },
  },
  {
    id: 'ingress',
    name: 'test app through the ingress on every node IP, from the host',
    needs: ['rollout'],
    async run(ctx, waits) {
      const nodes = placed(ctx.spec, 'nodes');
      await waitForEndpoints(ctx, waits, nodes.length);
      // Traefik loads the route once it has seen the Ingress and its Endpoints.
      await Promise.all(
        nodes.map((vm) =>
          waits.until(
            `Traefik on ${vm.name} routes http://${vm.ip}/ (Host: ${INGRESS_HOST})`,
            vm.name,
            'Look at Traefik: klab ssh master -- kubectl -n kube-system logs ds/traefik-ingress',
            async () => {
              // Lab traffic: never through a proxy from the environment.
              const response = await httpGet(`http://${vm.ip}/`, { Host: INGRESS_HOST }, 0, {
                proxy: false,
              });
              const body = response.body.toString('utf8');
              if (response.status === 200 && body.includes('klab test app')) return true;
              return response.status === 404
                ? 'HTTP 404: Traefik has no route for the test app yet'
                : `HTTP ${response.status}`;
            },
            [{ vm: vm.name, units: ['kubelet', 'docker'] }],
          ),
        ),
      );
      return `http://{${nodes.map((vm) => vm.ip).join(',')}}/ with Host: ${INGRESS_HOST}`;
    },
  },
];

function outcomeOf(error: unknown): CheckResult['outcome'] {
  if (!(error instanceof KlabError)) return 'failed';
  if (error.data?.outcome === 'broken') return 'broken';
  return error.code === 'KLAB_TIMEOUT' ? 'timed-out' : 'failed';
}

function errorDetail(error: unknown): string {
  return error instanceof KlabError
    ? `${error.message}${error.outputTail ? `\n${error.outputTail}` : ''}`
    : (error as Error).message;
}

/** Runs every check against an open lab (also the end of `klab create`). */
export async function runChecks(
  ctx: StepContext,
  checks: readonly Check[] = CHECKS,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const check of checks) {
    const blocked = (check.needs ?? []).filter(
      (id) => results.find((result) => result.id === id)?.ok === false,
    );
    if (blocked.length > 0) {
      const detail = `not run: needs ${blocked.join(', ')}, which failed`;
      ctx.sink.emit({
        kind: 'notice',
        code: 'CHECK_NOT_RUN',
        level: 'warn',
        text: `${check.name}: ${detail}`,
      });
      results.push({
        id: check.id,
        name: check.name,
        ok: false,
        detail,
        waitedS: 0,
        skipped: true,
        outcome: 'not-run',
      });
      continue;
    }
    const waits = new CheckWaits(ctx);
    const describe = (detail: string) =>
      waits.waitedMs >= 1000 ? `${detail}; waited ${Math.round(waits.waitedMs / 1000)} s` : detail;
    const result = await task(
      ctx.sink,
      check.name,
      async (update) => {
        waits.progress = update;
        return check.run(ctx, waits);
      },
      {
        describe,
        code: () => 'CHECK_PASSED',
        failedCode: 'CHECK_FAILED',
        subject: check.id,
      },
    ).then(
      (detail): CheckResult => ({
        id: check.id,
        name: check.name,
        ok: true,
        detail: describe(detail),
        waitedS: waits.waitedMs / 1000,
        outcome: 'passed',
      }),
      (error: unknown): CheckResult => ({
        id: check.id,
        name: check.name,
        ok: false,
        detail: errorDetail(error),
        waitedS: waits.waitedMs / 1000,
        outcome: outcomeOf(error),
      }),
    );
    results.push(result);
  }
  const failed = results.filter((result) => !result.ok);
  if (failed.length > 0) {
    const run = failed.filter((result) => !result.skipped);
    throw new KlabError(
      'KLAB_VERIFY_FAILED',
      `${run.length} of ${results.length} cluster checks failed${
        run.length < failed.length ? ` (${failed.length - run.length} more not run)` : ''
      }`,
      {
        details: failed.map((result) => `${result.name}: ${result.detail}`),
        data: { kind: 'VerifyReport', passed: false, checks: results },
        hint: 'Each failure names what it waited for and for how long; "klab status" and "klab ssh <vm>" help look closer. A slow host: raise timeouts.check in klab.yaml. Reset to a checkpoint with "klab reset after-kubelet" or repair with "klab create".',
      },
    );
  }
  return results;
}
