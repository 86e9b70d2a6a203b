/**
 * The faults of the break/fix lessons: what klab breaks on a working cluster, how it sees
 * that the learner repaired it (the result, exactly, and that it was repaired rather than
 * bypassed), and the repair `klab lesson solve` runs. Each fault breaks one VM: the first
 * node, so it works the same on the 2-VM and the 4-VM lab.
 */

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { certFiles } from '../../provision/certs/index.js';
import {
  DEFAULT_ROUTE_FILES,
  DEFAULT_ROUTE_UNIT,
  defaultRouteStep,
  desiredDefaultRoute,
  desiredInternalRoutes,
  internalRoutesPresent,
  parseDefaultRoutes,
  routeIsRight,
} from '../../provision/default-route/index.js';
import { renderDockerDropIn } from '../../provision/docker/index.js';
import {
  bridgeRoute,
  deleteLease,
  FLANNEL_SUBNETS,
  flannelLeases,
  ownPodsOnBridge,
  restoreOwnPodRoute,
} from '../../provision/flannel/index.js';
import { kubectl } from '../../provision/lib/cluster.js';
import { putFiles, waitFor } from '../../provision/lib/guest.js';
import {
  controlPlaneHealthy,
  etcdHealthy,
  nodeIsReady,
  nodeReadyByCurrentKubelet,
  unitsActive,
} from '../../provision/lib/probes.js';
import type { StepContext } from '../../provision/lib/step.js';
import { GUEST } from '../model/guest-paths.js';
import type { LabSpec, VmPlan } from '../model/spec.js';
import { etcdMembers, firstMaster, nodes } from '../model/topology.js';
import { APISERVER_KUBELET_USER, kubernetesServiceIp } from '../pki/plan.js';
import {
  APISERVER_TO_KUBELET_BINDING,
  apiserverToKubeletBinding,
  FORWARD_PROBE,
  renderForwardProbe,
} from '../render/manifests.js';
import { APISERVER_CERT, APISERVER_KEY, apiserverCertRemoved } from './apiserver-cert.js';
import type { Fault } from './fault.js';

function firstNode(ctx: StepContext): VmPlan {
  const [node] = nodes(ctx.spec);
  if (!node) throw new Error('the lab has no node');
  return node;
}

/** "<unit> is not running on <vm>" for each unit that is not active. */
async function notRunning(ctx: StepContext, vm: VmPlan, unit: string): Promise<string[]> {
  const stopped = await unitsActive([unit])(ctx, vm);
  return stopped.map((text) => `${text} on ${vm.name}`);
}

function sh(ctx: StepContext, vm: VmPlan, script: string) {
  return ctx.host(vm.name).run(['sh', '-c', script], { sudo: true, allowFailure: true });
}

/** Why `url` gets no HTTP answer from `vm` (undefined: any status came back). */
async function noHttpAnswer(
  ctx: StepContext,
  vm: VmPlan,
  url: string,
): Promise<string | undefined> {
  const result = await ctx
    .host(vm.name)
    .run(['curl', '-sSk', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', url], {
      allowFailure: true,
    });
  if (/^[1-5]\d\d$/.test(result.stdout.trim())) return undefined;
  return result.stderr.trim() || `curl exit ${result.exitCode}`;
}

/**
 * The `kubernetes` Service's ClusterIP answers from the VM: any HTTP status (401 without
 * credentials) proves the packet was routed and rewritten by kube-proxy's rules.
 */
async function clusterIpProblems(ctx: StepContext, vm: VmPlan): Promise<string[]> {
  const ip = kubernetesServiceIp(ctx.spec);
  const why = await noHttpAnswer(ctx, vm, `https://${ip}/`);
  return why
    ? [`the ClusterIP ${ip}:443 (Service "kubernetes") does not answer from ${vm.name}: ${why}`]
    : [];
}

async function podCidrProblems(ctx: StepContext, vm: VmPlan): Promise<string[]> {
  // The pod IP path stays alive in the kube-proxy fault: flannel, not kube-proxy, carries it.
  const routes = await ctx
    .host(vm.name)
    .run(['ip', '-4', 'route', 'show', 'dev', 'flannel.1'], { allowFailure: true });
  return routes.stdout.trim() ? [] : [`${vm.name} has no route to the other nodes' pod subnets`];
}

const routeDeleted: Fault = {
  id: 'route-deleted',
  async inject(ctx) {
    const vm = firstNode(ctx);
    // The default route and klab's own routes for the service and pod ranges: now the VM
    // has no route at all for a ClusterIP, as a VM without a default route would.
    const { serviceCidr, podCidr } = ctx.spec.network;
    await sh(
      ctx,
      vm,
      `ip -4 route del default; ip -4 route del ${serviceCidr}; ip -4 route del ${podCidr}; true`,
    );
  },
  async problems(ctx) {
    const vm = firstNode(ctx);
    const problems: string[] = [];
    const routes = await ctx.host(vm.name).run(['ip', '-4', 'route', 'show', 'default']);
    const want = desiredDefaultRoute(ctx.spec);
    if (!routeIsRight(parseDefaultRoutes(routes.stdout), want)) {
      problems.push(
        `${vm.name} should have exactly one default route, "default via ${want.via} dev ${want.dev}"; it has: ${routes.stdout.trim() || 'none'}`,
      );
    }
    return [...problems, ...(await clusterIpProblems(ctx, vm))];
  },
  async repair(ctx) {
    await ctx
      .host(firstNode(ctx).name)
      .run(['systemctl', 'restart', 'klab-default-route.service'], { sudo: true });
  },
};

/**
 * The default-route lesson's setup: on every VM klab's route unit is gone (disabled, its
 * files removed) and so are the routes it kept: the default route and the lab's service and
 * pod ranges on the private interface. The check wants them back on every VM, exactly.
 */
const defaultRouteUnset: Fault = {
  id: 'default-route-unset',
  async inject(ctx) {
    const { serviceCidr, podCidr } = ctx.spec.network;
    const commands: string[][] = [
      ['systemctl', 'disable', '--now', DEFAULT_ROUTE_UNIT],
      ['rm', '-f', ...DEFAULT_ROUTE_FILES],
      ['systemctl', 'daemon-reload'],
      ...['default', serviceCidr, podCidr].map((route) => ['ip', '-4', 'route', 'del', route]),
    ];
    for (const vm of ctx.spec.vms) {
      const host = ctx.host(vm.name);
      // A route already gone is fine: each command may fail on its own.
      for (const argv of commands) await host.run(argv, { sudo: true, allowFailure: true });
    }
  },
  async problems(ctx) {
    const want = desiredDefaultRoute(ctx.spec);
    const internal = desiredInternalRoutes(ctx.spec);
    const problems: string[] = [];
    for (const vm of ctx.spec.vms) {
      const all = await ctx
        .host(vm.name)
        .run(['ip', '-4', 'route', 'show'], { allowFailure: true });
      const defaults = parseDefaultRoutes(all.stdout);
      if (!routeIsRight(defaults, want)) {
        problems.push(
          `${vm.name} should have exactly one default route, "default via ${want.via} dev ${want.dev}"; it has ${
            defaults.length === 0
              ? 'none'
              : defaults.map((route) => `via ${route.via} dev ${route.dev}`).join(', ')
          }`,
        );
      }
      for (const cidr of internalRoutesPresent(all.stdout, internal)) {
        problems.push(
          `${vm.name} does not route ${cidr} to the private interface: "ip route add ${cidr} dev ${internal.dev}"`,
        );
      }
    }
    return problems;
  },
  async repair(ctx) {
    for (const vm of ctx.spec.vms) {
      await defaultRouteStep.apply(ctx, vm);
      await defaultRouteStep.verify(ctx, vm);
    }
  },
};

const kubeProxyStopped: Fault = {
  id: 'kube-proxy-stopped',
  async inject(ctx) {
    // Stopped, and its NAT rules flushed as `kube-proxy --cleanup` would: Services are dead
    // on this VM, while pod IPs (flannel) still answer.
    await sh(
      ctx,
      firstNode(ctx),
      'systemctl stop kube-proxy && iptables -t nat -F KUBE-SERVICES && iptables -t nat -F KUBE-NODEPORTS; true',
    );
  },
  async problems(ctx) {
    const vm = firstNode(ctx);
    return [
      ...(await notRunning(ctx, vm, 'kube-proxy')),
      ...(await clusterIpProblems(ctx, vm)),
      ...(await podCidrProblems(ctx, vm)),
    ];
  },
  async repair(ctx) {
    await ctx.host(firstNode(ctx).name).run(['systemctl', 'start', 'kube-proxy'], { sudo: true });
  },
};

const OTHER_CA = `${GUEST.pki}/other-ca.crt`;
const KUBELET_CONFIG = `${GUEST.k8sDir}/kubelet-config.yaml`;

/** The clientCAFile line of a KubeletConfiguration. */
export function kubeletClientCaFile(config: string): string | undefined {
  return /^\s*clientCAFile:\s*"?([^"\s]+)"?\s*$/m.exec(config)?.[1];
}

const kubeletWrongCa: Fault = {
  id: 'kubelet-wrong-ca',
  async inject(ctx) {
    // A CA that signed nothing in this lab: the kubelet now refuses the apiserver's client
    // certificate, so `kubectl logs`, `exec` and the node proxy fail with 401.
    const vm = firstNode(ctx);
    await sh(
      ctx,
      vm,
      [
        `openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=some-other-ca -keyout /tmp/other-ca.key -out ${OTHER_CA} 2>/dev/null`,
        'rm -f /tmp/other-ca.key',
        `sed -i 's#clientCAFile: .*#clientCAFile: ${OTHER_CA}#' ${KUBELET_CONFIG}`,
        'systemctl restart kubelet',
      ].join(' && '),
    );
  },
  async problems(ctx) {
    const vm = firstNode(ctx);
    const host = ctx.host(vm.name);
    const problems: string[] = [];
    const config = await host.run(['cat', KUBELET_CONFIG], { sudo: true, allowFailure: true });
    const caFile = kubeletClientCaFile(config.stdout);
    const labCa = (await readFile(path.join(ctx.pkiDir, 'ca.crt'), 'utf8')).trim();
    const trusted = caFile
      ? (await host.run(['cat', caFile], { sudo: true, allowFailure: true })).stdout.trim()
      : '';
    if (trusted !== labCa) {
      problems.push(
        `the kubelet on ${vm.name} trusts ${caFile ?? 'no file'} (clientCAFile in ${KUBELET_CONFIG}), which is not the lab CA (${GUEST.pki}/ca.crt)`,
      );
    }
    return [...problems, ...(await nodeProxyProblems(ctx, vm))];
  },
  async repair(ctx) {
    const vm = firstNode(ctx);
    await sh(
      ctx,
      vm,
      `sed -i 's#clientCAFile: .*#clientCAFile: ${GUEST.pki}/ca.crt#' ${KUBELET_CONFIG} && rm -f ${OTHER_CA} && systemctl restart kubelet`,
    );
  },
};

/** The apiserver reaches the kubelet's API on `vm` (node proxy /healthz answers ok). */
async function nodeProxyProblems(ctx: StepContext, vm: VmPlan): Promise<string[]> {
  const proxy = await kubectl(ctx, ['get', '--raw', `/api/v1/nodes/${vm.name}/proxy/healthz`], {
    allowFailure: true,
    timeoutMs: 30_000,
  });
  return proxy.stdout.trim() === 'ok'
    ? []
    : [
        `the apiserver cannot use the kubelet API on ${vm.name} (node proxy /healthz, what kubectl logs and exec go through): ${(proxy.stderr || proxy.stdout).trim()}`,
      ];
}

/** What in a KubeletConfiguration lets requests through without asking the apiserver. */
export function kubeletAuthBypassed(configYaml: string): string[] {
  let config: {
    authorization?: { mode?: string };
    authentication?: { anonymous?: { enabled?: boolean } };
  } = {};
  try {
    config = (YAML.parse(configYaml) ?? {}) as typeof config;
  } catch {
    return [`${KUBELET_CONFIG} is not valid YAML`];
  }
  const problems: string[] = [];
  if (config.authorization?.mode !== 'Webhook') {
    problems.push(
      `the kubelet's authorization.mode is ${config.authorization?.mode ?? 'unset'} (in ${KUBELET_CONFIG}), not Webhook: it no longer asks the apiserver who may use its API`,
    );
  }
  if (config.authentication?.anonymous?.enabled !== false) {
    problems.push(
      `the kubelet lets anonymous requests in (authentication.anonymous in ${KUBELET_CONFIG})`,
    );
  }
  return problems;
}

/** `kubectl auth can-i VERB RESOURCE --as USER`: yes or no. */
async function userCan(ctx: StepContext, user: string, verb: string, resource: string) {
  const answer = await kubectl(ctx, ['auth', 'can-i', verb, resource, '--as', user], {
    allowFailure: true,
  });
  return answer.stdout.trim() === 'yes';
}

const kubeletApiForbidden: Fault = {
  id: 'kubelet-api-forbidden',
  async inject(ctx) {
    // The binding that lets the apiserver's kubelet-client user into the kubelets' API:
    // without it every kubelet answers the apiserver 403 (logs, exec, port-forward).
    await kubectl(ctx, ['delete', 'clusterrolebinding', APISERVER_TO_KUBELET_BINDING], {
      allowFailure: true,
    });
    // The kubelet caches the apiserver's "allowed" answers for 5 minutes
    // (authorization.webhook.cacheAuthorizedTTL): restarted, it asks again at once. The
    // lesson starts once it answers, refusing.
    const vm = firstNode(ctx);
    await ctx.host(vm.name).run(['systemctl', 'restart', 'kubelet'], { sudo: true });
    await waitFor(
      ctx,
      {
        what: `the kubelet on ${vm.name} answering the apiserver again`,
        vm: vm.name,
        timeoutMs: ctx.spec.timeouts.health * 1000,
        hint: `Look at the log: klab ssh ${vm.name} -- sudo journalctl -u kubelet -n 50`,
      },
      async () => {
        const problems = await nodeProxyProblems(ctx, vm);
        return problems.some((problem) => problem.includes('Forbidden')) || problems.length === 0
          ? true
          : problems.join('; ');
      },
    );
  },
  async problems(ctx) {
    const vm = firstNode(ctx);
    const problems = await nodeProxyProblems(ctx, vm);
    // Repaired, not bypassed: the kubelet still asks the apiserver about every request,
    // and the apiserver's user got the kubelet API, not the whole cluster.
    const config = await ctx
      .host(vm.name)
      .run(['cat', KUBELET_CONFIG], { sudo: true, allowFailure: true });
    problems.push(...kubeletAuthBypassed(config.stdout).map((why) => `${vm.name}: ${why}`));
    if (await userCan(ctx, APISERVER_KUBELET_USER, 'delete', 'secrets')) {
      problems.push(
        `the user ${APISERVER_KUBELET_USER} may now delete secrets: it needs the kubelet API (ClusterRole system:kubelet-api-admin), not cluster-admin`,
      );
    }
    return problems;
  },
  async repair(ctx) {
    await kubectl(ctx, ['apply', '-f', '-'], {
      stdin: JSON.stringify(apiserverToKubeletBinding()),
    });
  },
};

const SWAPFILE = '/swapfile.klab';

const swapOn: Fault = {
  id: 'swap-on',
  async inject(ctx) {
    // Swap on now and at every boot, as an image or an installer might leave it; the
    // kubelet refuses to run with swap (failSwapOn) and the node goes NotReady.
    await sh(
      ctx,
      firstNode(ctx),
      [
        `fallocate -l 256M ${SWAPFILE}`,
        `chmod 600 ${SWAPFILE}`,
        `mkswap ${SWAPFILE} >/dev/null`,
        `swapon ${SWAPFILE}`,
        `echo '${SWAPFILE} none swap sw 0 0' >> /etc/fstab`,
        'systemctl restart kubelet',
      ].join(' && '),
    );
  },
  async problems(ctx) {
    const vm = firstNode(ctx);
    const host = ctx.host(vm.name);
    const problems: string[] = [];
    const swaps = await host.run(['swapon', '--show=NAME', '--noheadings'], { sudo: true });
    if (swaps.stdout.trim()) {
      problems.push(`swap is on on ${vm.name}: ${swaps.stdout.trim().split('\n').join(', ')}`);
    }
    const fstab = await host.run(['cat', '/etc/fstab']);
    const swapLines = fstab.stdout
      .split('\n')
      .filter((line) => !line.trim().startsWith('#') && /\sswap\s/.test(line));
    if (swapLines.length > 0) {
      problems.push(`/etc/fstab on ${vm.name} turns swap on at boot: ${swapLines.join('; ')}`);
    }
    // The causes first, and only they while any is left: with swap on, the kubelet exits
    // and systemd starts it again every few seconds, so "is it running" would flip from one
    // check to the next (and "klab ui"'s Check could disagree with "klab lesson check").
    if (problems.length > 0) return problems;
    const kubelet = await notRunning(ctx, vm, 'kubelet');
    if (kubelet.length > 0) return kubelet;
    // The repair restarts the kubelet: only its own report of Ready counts.
    return nodeReadyByCurrentKubelet()(ctx, vm);
  },
  async repair(ctx) {
    await sh(
      ctx,
      firstNode(ctx),
      `swapoff -a && sed -i '/\\sswap\\s/d' /etc/fstab && rm -f ${SWAPFILE} && systemctl restart kubelet`,
    );
  },
};

/** The etcd members a fault stops: the last `count` (never the first, which answers kubectl's etcdctl). */
function stoppedMembers(spec: LabSpec, count: number): VmPlan[] {
  return etcdMembers(spec).slice(-count);
}

function needsMembers(spec: LabSpec, wanted: number): string | undefined {
  const have = etcdMembers(spec).length;
  return have >= 3
    ? undefined
    : `it needs three etcd members (to stop ${wanted} of them); this lab has ${have} (etcd.members in klab.yaml; the default 4-VM lab has three)`;
}

/** Every etcd member runs and answers `endpoint health`; names the ones that do not. */
async function etcdMemberProblems(ctx: StepContext): Promise<string[]> {
  const perMember = await Promise.all(
    etcdMembers(ctx.spec).map(async (member) => {
      const stopped = await notRunning(ctx, member, 'etcd');
      if (stopped.length > 0) return stopped;
      const health = await etcdHealthy()(ctx, member);
      return health.map((text) => `${member.name}: ${text}`);
    }),
  );
  return perMember.flat();
}

function etcdStopFault(id: string, count: number): Fault {
  return {
    id,
    unsupported: (spec) => needsMembers(spec, count),
    async inject(ctx) {
      await Promise.all(
        stoppedMembers(ctx.spec, count).map((member) =>
          ctx.host(member.name).run(['systemctl', 'stop', 'etcd'], { sudo: true }),
        ),
      );
    },
    async problems(ctx) {
      const problems = await etcdMemberProblems(ctx);
      if (problems.length > 0) return problems;
      // Quorum back is not the end: the apiserver must answer again too.
      return controlPlaneHealthy()(ctx, firstMaster(ctx.spec));
    },
    async repair(ctx) {
      await Promise.all(
        stoppedMembers(ctx.spec, count).map((member) =>
          ctx.host(member.name).run(['systemctl', 'start', '--no-block', 'etcd'], { sudo: true }),
        ),
      );
    },
  };
}

const FLANNEL_UNIT = `${GUEST.units}/flanneld.service`;

/** The lease key of a subnet.env: FLANNEL_SUBNET=172.30.12.1/24 -> <prefix>/subnets/172.30.12.0-24. */
export function flannelLeaseKey(subnetEnv: string): string | undefined {
  const net = bridgeRoute(subnetEnv)?.net;
  return net ? `${FLANNEL_SUBNETS}/${net.replace('/', '-')}` : undefined;
}

/** Leases whose PublicIP is no VM's private address (a flanneld once started on eth0). */
export function foreignLeases(
  leases: ReadonlyMap<string, string>,
  spec: LabSpec,
): { key: string; ip: string }[] {
  const privateIps = new Set(spec.vms.map((vm) => vm.ip));
  return [...leases].filter(([, ip]) => !privateIps.has(ip)).map(([key, ip]) => ({ key, ip }));
}

const flannelWrongIface: Fault = {
  id: 'flannel-wrong-iface',
  async inject(ctx) {
    // flanneld told to use eth0, the management (NAT) network every VM is on: its lease now
    // names that address, and pod traffic leaves the private network.
    await sh(
      ctx,
      firstNode(ctx),
      [
        "eth0=$(ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)",
        `sed -i "s#-iface=[0-9.]*#-iface=$eth0#" ${FLANNEL_UNIT}`,
        'systemctl daemon-reload',
        'systemctl restart flanneld',
      ].join(' && '),
    );
  },
  async problems(ctx) {
    const vm = firstNode(ctx);
    const stopped = await notRunning(ctx, vm, 'flanneld');
    if (stopped.length > 0) return stopped;
    const env = await ctx
      .host(vm.name)
      .run(['cat', '/run/flannel/subnet.env'], { allowFailure: true });
    const key = flannelLeaseKey(env.stdout);
    if (!key) return [`flanneld on ${vm.name} has no subnet lease (/run/flannel/subnet.env)`];
    const leases = await flannelLeases(ctx);
    const publicIp = leases.get(key);
    if (publicIp === undefined)
      return [`the flannel lease ${key} of ${vm.name} is missing in etcd`];
    const problems: string[] = [];
    if (publicIp !== vm.ip) {
      problems.push(
        `the flannel lease of ${vm.name} (${key}) carries pod traffic over ${publicIp || 'no address'}, not the private address ${vm.ip}: see -iface in ${FLANNEL_UNIT}`,
      );
    }
    problems.push(...(await ownPodsOnBridge(ctx, vm)).map((problem) => `${vm.name}: ${problem}`));
    for (const stale of foreignLeases(leases, ctx.spec)) {
      problems.push(
        `the lease ${stale.key} names ${stale.ip}, an address outside the lab's private network: every VM still routes that subnet there (delete it in etcd)`,
      );
    }
    return problems;
  },
  async repair(ctx) {
    const vm = firstNode(ctx);
    await sh(
      ctx,
      vm,
      `sed -i "s#-iface=[0-9.]*#-iface=${vm.ip}#" ${FLANNEL_UNIT} && systemctl daemon-reload && systemctl restart flanneld`,
    );
    await restoreOwnPodRoute(ctx, vm);
    for (const stale of foreignLeases(await flannelLeases(ctx), ctx.spec)) {
      await deleteLease(ctx, stale.key);
    }
  },
};

/**
 * The SANs of the fault's certificate: the master's own names and addresses, and none of
 * the `kubernetes` Service's (its ClusterIP, kubernetes.default...): the classic slip when
 * issuing it by hand. Kubelets, kube-proxy and kubectl, which dial the master's address,
 * keep working (a fault that broke them would make every client reconnect in a loop, which
 * on a software-emulated master starves the apiserver into restarts); pods, which reach the
 * apiserver through the Service, refuse it.
 */
export function wrongApiserverSans(spec: LabSpec): string {
  const master = firstMaster(spec);
  return ['DNS:kubernetes', `DNS:${master.name}`, `IP:${master.ip}`, 'IP:127.0.0.1'].join(',');
}

/**
 * The command (run as root on the master) that issues a server certificate for kube-apiserver
 * from the lab CA on the master, with the SANs given, installs it and restarts the apiserver.
 * The learner's repair is the same command with the right SANs.
 */
export function issueApiserverCertScript(
  sans: string,
  options: { dir?: string; restart?: string } = {},
): string {
  const dir = options.dir ?? GUEST.pki;
  return [
    'set -e',
    't=$(mktemp -d)',
    `printf 'subjectAltName=${sans}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > $t/ext`,
    'openssl req -new -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout $t/key -out $t/csr 2>/dev/null',
    `openssl x509 -req -in $t/csr -CA ${dir}/ca.crt -CAkey ${dir}/ca.key -set_serial 0x$(openssl rand -hex 8) -days 365 -extfile $t/ext -out $t/crt 2>/dev/null`,
    `install -m 0644 $t/crt ${dir}/apiserver.crt`,
    `install -m 0600 $t/key ${dir}/apiserver.key`,
    'rm -rf $t',
    options.restart ?? 'systemctl restart kube-apiserver',
  ].join('\n');
}

/**
 * From `vm`, kube-apiserver's certificate verifies against the lab CA for `url` (curl checks
 * the chain, the dates and that a SAN matches the name or address asked for). Any HTTP
 * status proves the TLS handshake passed.
 */
async function apiserverVerifies(
  ctx: StepContext,
  vm: VmPlan,
  url: string,
  resolve?: string,
): Promise<string[]> {
  const result = await ctx
    .host(vm.name)
    .run(
      [
        'curl',
        '-sS',
        '--cacert',
        `${GUEST.pki}/ca.crt`,
        ...(resolve ? ['--resolve', resolve] : []),
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--max-time',
        '10',
        url,
      ],
      { allowFailure: true },
    );
  if (/^[1-5]\d\d$/.test(result.stdout.trim())) return [];
  const why = result.stderr.trim() || `curl exit ${result.exitCode}`;
  return [`${vm.name} cannot verify kube-apiserver at ${url} with the lab CA: ${why}`];
}

const apiserverCertWrongSan: Fault = {
  id: 'apiserver-cert-wrong-san',
  async inject(ctx) {
    // A certificate from the right CA without the kubernetes Service's names (see
    // wrongApiserverSans): pods, which dial 10.254.0.1, refuse it; the rest works.
    const master = firstMaster(ctx.spec);
    await sh(ctx, master, issueApiserverCertScript(wrongApiserverSans(ctx.spec)));
    // The lesson starts once the new apiserver serves (127.0.0.1 is still a SAN), so the
    // learner meets the certificate error, not a connection refused.
    await waitFor(
      ctx,
      {
        what: 'kube-apiserver serving its new certificate',
        vm: master.name,
        timeoutMs: ctx.spec.timeouts.health * 1000,
        hint: `Look at the log: klab ssh ${master.name} -- sudo journalctl -u kube-apiserver -n 50`,
      },
      async () => {
        const problems = await apiserverVerifies(ctx, master, 'https://127.0.0.1:6443/healthz');
        return problems.length === 0 ? true : problems.join('; ');
      },
    );
  },
  async problems(ctx) {
    const master = firstMaster(ctx.spec);
    const node = firstNode(ctx);
    const serviceIp = kubernetesServiceIp(ctx.spec);
    // What pods dial (the Service by address and by name), and what the rest dials (the
    // master): a new certificate must name both.
    const problems = [
      ...(await apiserverVerifies(ctx, node, `https://${serviceIp}/healthz`)),
      ...(await apiserverVerifies(
        ctx,
        node,
        'https://kubernetes.default.svc/healthz',
        `kubernetes.default.svc:443:${serviceIp}`,
      )),
      ...(await apiserverVerifies(ctx, node, `https://${master.ip}:6443/healthz`)),
      ...(await apiserverVerifies(ctx, node, `https://${master.name}:6443/healthz`)),
    ];
    // Repaired, not bypassed: no kubeconfig stops checking the certificate.
    for (const vm of [master, node]) {
      const skip = await sh(
        ctx,
        vm,
        `grep -l insecure-skip-tls-verify ${GUEST.k8sDir}/*.kubeconfig /var/lib/kubelet/*.kubeconfig /root/.kube/config /home/vagrant/.kube/config 2>/dev/null`,
      );
      const files = skip.stdout.trim().split('\n').filter(Boolean);
      if (files.length > 0) {
        problems.push(
          `${vm.name}: ${files.join(', ')} turn(s) certificate checks off (insecure-skip-tls-verify): fix the certificate instead`,
        );
      }
    }
    if (problems.length > 0) return problems;
    const control = await controlPlaneHealthy()(ctx, master);
    if (control.length > 0) return control;
    return nodeIsReady()(ctx, node);
  },
  async repair(ctx) {
    const master = firstMaster(ctx.spec);
    const files = (await certFiles(ctx, master)).filter(
      (file) => file.path === APISERVER_CERT || file.path === APISERVER_KEY,
    );
    await putFiles(ctx.host(master.name), files);
    await ctx.host(master.name).run(['systemctl', 'restart', 'kube-apiserver'], { sudo: true });
  },
};

const DOCKER_DROP_IN = `${GUEST.units}/docker.service.d/klab.conf`;
const FLANNEL_DROP_IN = `${GUEST.units}/flanneld.service.d/klab-lesson-forward.conf`;
/** flanneld reads every flag from FLANNELD_<FLAG> as well. */
const FLANNEL_NO_FORWARD_RULES = 'FLANNELD_IPTABLES_FORWARD_RULES=false';

/** The policy line of `iptables -S FORWARD`: ACCEPT, DROP, ... */
export function forwardPolicy(iptablesS: string): string | undefined {
  return /^-P FORWARD (\S+)/m.exec(iptablesS)?.[1];
}

/**
 * The rules flanneld adds so that pod traffic is forwarded whatever the policy: v0.10
 * writes `-s/-d <pod range> -j ACCEPT` in FORWARD, later versions jump to FLANNEL-FWD and
 * tag their rules "flanneld forward". Returned as `-A ...` lines of `iptables -S`.
 */
export function flannelForwardRules(iptablesS: string, podCidr: string): string[] {
  return iptablesS
    .split('\n')
    .map((line) => line.trim())
    .filter(
      (line) =>
        /^-A (FORWARD|FLANNEL-FWD) /.test(line) &&
        (line.includes('flanneld forward') ||
          line === `-A FORWARD -s ${podCidr} -j ACCEPT` ||
          line === `-A FORWARD -d ${podCidr} -j ACCEPT`),
    );
}

/** A unit's text (`systemctl cat`) puts the FORWARD policy back to ACCEPT after each start. */
export function restoresForwardAccept(unitText: string): boolean {
  return unitText
    .split('\n')
    .some((line) => /^\s*ExecStartPost=.*iptables\s+-P\s+FORWARD\s+ACCEPT\b/.test(line));
}

/** `iptables -S` lines turned into the commands that delete them. */
export function deleteRuleCommands(rules: readonly string[]): string[] {
  return rules.map((rule) => `iptables ${rule.replace(/^-A /, '-D ')}`);
}

const forwardDrop: Fault = {
  id: 'forward-drop',
  async inject(ctx) {
    const vm = firstNode(ctx);
    const master = firstMaster(ctx.spec);
    // A pod on node1 the master reaches by its IP: traffic node1 must forward (flannel.1 ->
    // docker0), which is what the FORWARD chain decides.
    await kubectl(ctx, ['apply', '-f', '-'], {
      stdin: renderForwardProbe(ctx.profile, vm.name),
    });
    await waitFor(
      ctx,
      {
        what: `the pod default/${FORWARD_PROBE} answering on ${vm.name}`,
        vm: master.name,
        timeoutMs: ctx.spec.timeouts.check * 1000,
        hint: `Look at the pod: klab ssh ${master.name} -- kubectl describe pod ${FORWARD_PROBE}`,
      },
      async () => {
        const problems = await forwardProbeProblems(ctx, vm);
        return problems.length === 0 ? true : problems.join('; ');
      },
    );
    // Docker as shipped: it sets the FORWARD policy to DROP when it starts, and klab's
    // drop-in no longer puts it back. flanneld without its own FORWARD rules, as before
    // v0.10 (they would let pod traffic through whatever the policy).
    const podCidr = ctx.spec.network.podCidr;
    await sh(
      ctx,
      vm,
      [
        `sed -i '/FORWARD/d' ${DOCKER_DROP_IN}`,
        `mkdir -p ${path.posix.dirname(FLANNEL_DROP_IN)}`,
        `printf '[Service]\\nEnvironment=${FLANNEL_NO_FORWARD_RULES}\\n' > ${FLANNEL_DROP_IN}`,
        'systemctl daemon-reload',
        // flanneld alone: docker (which requires it) keeps running, and so do the pods.
        'systemctl --job-mode=ignore-dependencies restart flanneld',
        'iptables -P FORWARD DROP',
      ].join(' && '),
    );
    const rules = await ctx.host(vm.name).run(['iptables', '-S'], { sudo: true });
    const stale = flannelForwardRules(rules.stdout, podCidr);
    if (stale.length > 0) await sh(ctx, vm, deleteRuleCommands(stale).join('; '));
  },
  async problems(ctx) {
    const vm = firstNode(ctx);
    const host = ctx.host(vm.name);
    const problems = await forwardProbeProblems(ctx, vm);
    if (problems.length > 0) return problems;
    // Repaired, not patched until the next restart: after docker starts again, either its
    // unit puts the policy back to ACCEPT, or flanneld (ensuring its rules) lets pods through.
    const docker = await host.run(['systemctl', 'cat', 'docker'], { allowFailure: true });
    const flannel = await host.run(['systemctl', 'show', 'flanneld', '-p', 'Environment'], {
      allowFailure: true,
    });
    const rules = await host.run(['iptables', '-S'], { sudo: true });
    const flannelKeepsRules =
      !flannel.stdout.includes(FLANNEL_NO_FORWARD_RULES) &&
      flannelForwardRules(rules.stdout, ctx.spec.network.podCidr).length > 0;
    if (!restoresForwardAccept(docker.stdout) && !flannelKeepsRules) {
      problems.push(
        `pod traffic passes ${vm.name} now, but only until Docker restarts: it sets the FORWARD policy to DROP when it starts (now: ${forwardPolicy(rules.stdout) ?? 'unknown'}), docker.service does not set it back (no ExecStartPost with iptables -P FORWARD ACCEPT in ${DOCKER_DROP_IN}), and flanneld adds no FORWARD rules of its own (${FLANNEL_NO_FORWARD_RULES} in ${FLANNEL_DROP_IN})`,
      );
    }
    return problems;
  },
  async repair(ctx) {
    const vm = firstNode(ctx);
    const host = ctx.host(vm.name);
    await putFiles(host, [
      { path: DOCKER_DROP_IN, content: renderDockerDropIn(ctx.profile), mode: 0o644 },
    ]);
    // flanneld's own rules come back at its next start; the policy is enough now.
    await sh(
      ctx,
      vm,
      `rm -f ${FLANNEL_DROP_IN} && systemctl daemon-reload && iptables -P FORWARD ACCEPT`,
    );
  },
};

/** The master reaches the probe pod on `vm` by its pod IP (any HTTP answer). */
async function forwardProbeProblems(ctx: StepContext, vm: VmPlan): Promise<string[]> {
  const master = firstMaster(ctx.spec);
  const pod = await kubectl(
    ctx,
    [
      '-n',
      'default',
      'get',
      'pod',
      FORWARD_PROBE,
      '-o',
      'jsonpath={.status.phase} {.status.podIP}',
    ],
    { allowFailure: true },
  );
  const [phase = '', ip = ''] = pod.stdout.trim().split(' ');
  if (pod.exitCode !== 0 || phase !== 'Running' || !ip) {
    return [
      `the pod default/${FORWARD_PROBE} on ${vm.name} is not running (${pod.stderr.trim() || phase || 'no status'})`,
    ];
  }
  const why = await noHttpAnswer(ctx, master, `http://${ip}/`);
  return why
    ? [
        `${master.name} cannot reach the pod ${FORWARD_PROBE} on ${vm.name} by its IP ${ip}: ${why} (${vm.name} must forward it from flannel.1 to docker0)`,
      ]
    : [];
}

/** Where the reboot lesson keeps, on each VM's disk, the boot it started in. */
export const LESSON_BOOT_ID = '/var/lib/klab/lesson-boot-id';

/**
 * The reboot lesson: nothing is broken. At the start each VM writes down its boot ID; the
 * check wants every VM booted since (a reboot, or klab halt and klab up, in any order), and
 * the cluster back by itself: etcd, the control plane, every node Ready, one default route,
 * Services through kube-proxy. Its solution is a reboot (`solution: reboot`), not a repair.
 */
const rebootPending: Fault = {
  id: 'reboot-pending',
  async inject(ctx) {
    for (const vm of ctx.spec.vms) {
      await sh(
        ctx,
        vm,
        `mkdir -p ${path.dirname(LESSON_BOOT_ID)} && cat /proc/sys/kernel/random/boot_id > ${LESSON_BOOT_ID}`,
      );
    }
  },
  async problems(ctx) {
    const notRebooted: string[] = [];
    for (const vm of ctx.spec.vms) {
      const ids = await sh(
        ctx,
        vm,
        `cat ${LESSON_BOOT_ID} /proc/sys/kernel/random/boot_id 2>/dev/null || true`,
      );
      const [started, now] = ids.stdout.trim().split('\n');
      if (started && started === now) notRebooted.push(vm.name);
    }
    if (notRebooted.length > 0) {
      return [
        `${notRebooted.join(', ')} not rebooted since the lesson started: reboot every VM (klab ssh VM -- sudo reboot, or klab halt then klab up)`,
      ];
    }
    const master = firstMaster(ctx.spec);
    const problems: string[] = [];
    for (const vm of ctx.spec.vms) {
      const routes = await ctx
        .host(vm.name)
        .run(['ip', '-4', 'route', 'show', 'default'], { allowFailure: true });
      const want = desiredDefaultRoute(ctx.spec);
      if (!routeIsRight(parseDefaultRoutes(routes.stdout), want)) {
        problems.push(
          `${vm.name} came back without its one default route (via ${want.via} dev ${want.dev}): ${routes.stdout.trim() || 'none'}`,
        );
      }
    }
    const [member] = etcdMembers(ctx.spec);
    if (member) problems.push(...(await etcdHealthy()(ctx, member)));
    if (problems.length > 0) return problems;
    const control = await controlPlaneHealthy()(ctx, master);
    if (control.length > 0) return control;
    for (const node of nodes(ctx.spec)) {
      problems.push(...(await nodeIsReady()(ctx, node)));
      problems.push(...(await clusterIpProblems(ctx, node)));
    }
    return problems;
  },
  async repair() {
    throw new Error('the reboot lesson is solved by rebooting the lab (solution: reboot)');
  },
};

export const FAULTS: readonly Fault[] = [
  defaultRouteUnset,
  routeDeleted,
  kubeProxyStopped,
  kubeletWrongCa,
  kubeletApiForbidden,
  apiserverCertWrongSan,
  swapOn,
  flannelWrongIface,
  forwardDrop,
  apiserverCertRemoved,
  rebootPending,
  etcdStopFault('etcd-member-stopped', 1),
  etcdStopFault('etcd-quorum-lost', 2),
];

export function findFault(id: string): Fault | undefined {
  return FAULTS.find((fault) => fault.id === id);
}
