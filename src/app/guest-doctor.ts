/**
 * `klab doctor --guests`: what is wrong inside the VMs, each finding with its fix. Read
 * only: nothing is changed. Per VM: the default route, kernel modules and sysctls, swap,
 * machine-id uniqueness, clock skew, the state of the lab's units, certificate expiry,
 * etcd (members and health), flannel (lease and interface), the FORWARD policy and a
 * resolv.conf that would make a DNS loop. A check about a part whose step is not done on
 * that VM yet is left out (a half-built lab is not a broken one).
 */
import { X509Certificate } from 'node:crypto';
import {
  desiredDefaultRoute,
  parseDefaultRoutes,
  routeIsRight,
} from '../../provision/default-route/index.js';
import { ownPodsOnBridge } from '../../provision/flannel/index.js';
import { KERNEL_MODULES, modulesAndSysctls } from '../../provision/kernel/index.js';
import { etcdctl, etcdctlSays, etcdHealthArgs } from '../../provision/lib/cluster.js';
import { unitStates } from '../../provision/lib/probes.js';
import type { StepContext } from '../../provision/lib/step.js';
import {
  flannelForwardRules,
  flannelLeaseKey,
  forwardPolicy,
  restoresForwardAccept,
} from '../lessons/faults.js';
import { task } from '../model/events.js';
import { KUBELET_CERT_DIR } from '../model/guest-paths.js';
import type { VmPlan } from '../model/spec.js';
import type { LabState } from '../model/state.js';
import { etcdMembers, isEtcdMember } from '../model/topology.js';
import { clockSkew, parseGuestTime } from './guest-clock.js';
import { type LabRequest, openCreatedLab, stepContext } from './lab.js';
import type { Finding } from './preflight.js';
import { connectAll } from './session.js';

export interface GuestFinding extends Finding {
  vm: string;
}

/** Days before expiry from which a certificate is reported (warn). */
export const CERT_WARN_DAYS = 30;
/** Seconds a guest clock may be off (outside the measurement's round trip): warn, then fail. */
export const CLOCK_WARN_S = 2;
export const CLOCK_FAIL_S = 60;

/** The units klab installs, the step that installs each, and where they run. */
export const LAB_UNITS: readonly { unit: string; step: string }[] = [
  { unit: 'klab-default-route', step: 'default-route' },
  { unit: 'etcd', step: 'etcd' },
  { unit: 'flanneld', step: 'flannel' },
  { unit: 'docker', step: 'docker' },
  { unit: 'kube-apiserver', step: 'control-plane' },
  { unit: 'kube-controller-manager', step: 'control-plane' },
  { unit: 'kube-scheduler', step: 'control-plane' },
  { unit: 'kube-proxy', step: 'kube-proxy' },
  { unit: 'kubelet', step: 'kubelet' },
];

const CERT_DIRS = ['/etc/kubernetes/pki', '/etc/etcd/pki', KUBELET_CERT_DIR];

/** Every certificate file, each after a "==> <file>" line (read here, parsed on the host). */
const CERT_FILES = `for f in $(find ${CERT_DIRS.join(' ')} -maxdepth 1 \\( -name '*.crt' -o -name 'kubelet-client-current.pem' \\) 2>/dev/null); do
  echo "==> $f"; cat "$f"
done`;

/**
 * "==> <file>" headers each followed by PEM -> the expired (or unreadable) and the soon.
 * Parsed with node:crypto on the host: an openssl process per file costs seconds under
 * software emulation.
 */
export function certExpiryFindings(
  listing: string,
  nowMs: number,
): { expired: string[]; soon: string[]; count: number } {
  const expired: string[] = [];
  const soon: string[] = [];
  const parts = listing.split(/^==> (.+)$/m).slice(1);
  for (let index = 0; index + 1 < parts.length; index += 2) {
    const file = parts[index]?.trim() ?? '';
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(
      parts[index + 1] ?? '',
    )?.[0];
    let validTo: string;
    try {
      if (!pem) throw new Error('no certificate');
      validTo = new X509Certificate(pem).validTo;
    } catch {
      expired.push(`${file} (unreadable)`);
      continue;
    }
    const days = (Date.parse(validTo) - nowMs) / 86_400_000;
    if (!Number.isFinite(days)) expired.push(`${file} (unreadable date ${validTo})`);
    else if (days < 0) expired.push(`${file} (expired ${validTo})`);
    else if (days < CERT_WARN_DAYS) soon.push(`${file} (${Math.floor(days)} days left)`);
  }
  return { expired, soon, count: parts.length / 2 };
}

/** The nameservers of a resolv.conf. */
export function nameservers(resolvConf: string): string[] {
  return [...resolvConf.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((match) => match[1] ?? '');
}

/**
 * A loopback nameserver (systemd-resolved's 127.0.0.53) handed to pods: the kubelet gives
 * pods the resolv.conf it is told to (resolvConf, default /etc/resolv.conf), and in a pod
 * 127.0.0.53 is the pod itself; a cluster DNS server that forwards there asks itself.
 */
export function resolvLoop(resolvConf: string, kubeletResolvConf: string | undefined): string[] {
  if (kubeletResolvConf && kubeletResolvConf !== '/etc/resolv.conf') return [];
  return nameservers(resolvConf).filter((server) => server.startsWith('127.'));
}

/** resolvConf from a KubeletConfiguration (YAML, one line). */
export function kubeletResolvConf(config: string): string | undefined {
  return /^\s*resolvConf:\s*"?([^"\s]+)"?\s*$/m.exec(config)?.[1];
}

/** VM names that share a machine-id with another VM. */
export function sharedMachineIds(ids: ReadonlyMap<string, string>): string[] {
  const byId = new Map<string, string[]>();
  for (const [vm, id] of ids) byId.set(id, [...(byId.get(id) ?? []), vm]);
  return [...byId.values()].filter((vms) => vms.length > 1).flat();
}

interface GuestContext {
  ctx: StepContext;
  vm: VmPlan;
  /** Whether the step is done on this VM (klab's record). */
  done(step: string): boolean;
}

type Found = Omit<GuestFinding, 'vm'>;

async function defaultRoute({ ctx, vm }: GuestContext): Promise<Found> {
  const routes = await ctx.host(vm.name).run(['ip', '-4', 'route', 'show', 'default']);
  const want = desiredDefaultRoute(ctx.spec);
  const ok = routeIsRight(parseDefaultRoutes(routes.stdout), want);
  return {
    check: 'default route',
    status: ok ? 'ok' : 'fail',
    detail: ok
      ? `default via ${want.via} dev ${want.dev}`
      : `want exactly "default via ${want.via} dev ${want.dev}"; have: ${routes.stdout.trim().replace(/\n/g, '; ') || 'none'} (Service traffic through iptables needs it)`,
    fix: `klab ssh ${vm.name} -- sudo systemctl restart klab-default-route (lesson: route-deleted)`,
  };
}

async function kernel({ ctx, vm }: GuestContext): Promise<Found> {
  const problems = await modulesAndSysctls(ctx.host(vm.name));
  return {
    check: 'kernel',
    status: problems.length === 0 ? 'ok' : 'fail',
    detail:
      problems.length === 0
        ? `${KERNEL_MODULES.join(', ')} loaded; sysctls set`
        : problems.join('; '),
    fix: `klab ssh ${vm.name} -- 'sudo modprobe -a ${KERNEL_MODULES.join(' ')} && sudo sysctl --system'`,
  };
}

async function swap({ ctx, vm }: GuestContext): Promise<Found> {
  const host = ctx.host(vm.name);
  const swaps = await host.run(['cat', '/proc/swaps']);
  const active = swaps.stdout.trim().split('\n').slice(1).filter(Boolean);
  const fstab = await host.run(['cat', '/etc/fstab'], { allowFailure: true });
  const atBoot = fstab.stdout
    .split('\n')
    .filter((line) => !line.trim().startsWith('#') && /\sswap\s/.test(line));
  const problems = [
    ...(active.length > 0 ? [`swap on: ${active.map((l) => l.split(/\s+/)[0]).join(', ')}`] : []),
    ...(atBoot.length > 0 ? [`/etc/fstab turns swap on at boot: ${atBoot.join('; ')}`] : []),
  ];
  return {
    check: 'swap',
    status: problems.length === 0 ? 'ok' : 'fail',
    detail:
      problems.length === 0
        ? 'off'
        : `${problems.join('; ')} (the kubelet refuses to run with swap)`,
    fix: `klab ssh ${vm.name} -- sudo swapoff -a, and remove the swap line from /etc/fstab (lesson: swap-on)`,
  };
}

async function clock({ ctx, vm }: GuestContext): Promise<Found> {
  const sentMs = Date.now();
  const result = await ctx.host(vm.name).run(['date', '+%s.%N']);
  const receivedMs = Date.now();
  const skew = clockSkew({ sentMs, receivedMs, guestMs: parseGuestTime(result.stdout) });
  return {
    check: 'clock',
    status: skew > CLOCK_FAIL_S ? 'fail' : skew > CLOCK_WARN_S ? 'warn' : 'ok',
    detail:
      skew > CLOCK_WARN_S
        ? `${skew.toFixed(1)} s off the host's clock (TLS refuses certificates "not yet valid")`
        : `within ${CLOCK_WARN_S} s of the host's`,
    fix: `"klab up" steps every guest clock again; or klab ssh ${vm.name} -- sudo date -u -s @$(date +%s)`,
  };
}

async function units({ ctx, vm, done }: GuestContext): Promise<Found[]> {
  const names = LAB_UNITS.filter((entry) => done(entry.step)).map((entry) => entry.unit);
  if (names.length === 0) return [];
  // Only the units this VM has (each step runs on some roles): the loaded ones.
  const show = await ctx
    .host(vm.name)
    .run(['systemctl', 'show', '-p', 'Id,LoadState,ActiveState', ...names], { allowFailure: true });
  const mine = unitStates(show.stdout).filter((entry) => entry.loaded);
  if (mine.length === 0) return [];
  const down = mine.filter((entry) => entry.active !== 'active');
  return [
    {
      check: 'units',
      status: down.length === 0 ? 'ok' : 'fail',
      detail:
        down.length === 0
          ? `${mine.length} active: ${mine.map((entry) => entry.unit).join(', ')}`
          : `not running: ${down.map((entry) => `${entry.unit} (${entry.active || 'unknown'})`).join(', ')}`,
      fix: `klab ssh ${vm.name} -- sudo journalctl -u ${down[0]?.unit ?? 'UNIT'} -n 50, then sudo systemctl start ${down.map((entry) => entry.unit).join(' ') || 'UNIT'}`,
    },
  ];
}

async function certificates({ ctx, vm, done }: GuestContext): Promise<Found[]> {
  if (!done('certs')) return [];
  const listing = await ctx
    .host(vm.name)
    .run(['sh', '-c', CERT_FILES], { sudo: true, allowFailure: true });
  const { expired, soon, count } = certExpiryFindings(listing.stdout, Date.now());
  const status = expired.length > 0 ? 'fail' : soon.length > 0 ? 'warn' : 'ok';
  return [
    {
      check: 'certificates',
      status,
      detail:
        status === 'ok'
          ? `${count} certificate(s), none expiring within ${CERT_WARN_DAYS} days`
          : [...expired, ...soon].join('; '),
      fix: 'klab certs check, then klab certs renew NAME (the kubelet renews its own client certificate)',
    },
  ];
}

async function etcd({ ctx, vm, done }: GuestContext): Promise<Found[]> {
  if (!done('etcd') || !isEtcdMember(ctx.spec, vm)) return [];
  const health = await etcdctl(ctx, vm, etcdHealthArgs(ctx), {
    allowFailure: true,
    timeoutMs: 30_000,
  });
  if (health.exitCode !== 0 || !/is healthy/.test(`${health.stdout}${health.stderr}`)) {
    return [
      {
        check: 'etcd',
        status: 'fail',
        detail: `this member is not healthy: ${etcdctlSays(health.stderr || health.stdout)}`,
        fix: `klab ssh ${vm.name} -- sudo systemctl start etcd; sudo journalctl -u etcd -n 50 (lessons: etcd-member-stopped, etcd-quorum-lost)`,
      },
    ];
  }
  const list = await etcdctl(ctx, vm, ['member', 'list'], { allowFailure: true });
  const want = etcdMembers(ctx.spec).map((member) => member.name);
  const have = list.stdout
    .split('\n')
    .map((line) => line.split(',').map((field) => field.trim())[2])
    .filter((name): name is string => Boolean(name));
  const missing = want.filter((name) => !have.includes(name));
  const extra = have.filter((name) => !want.includes(name));
  const ok = missing.length === 0 && extra.length === 0;
  return [
    {
      check: 'etcd',
      status: ok ? 'ok' : 'fail',
      detail: ok
        ? `healthy; members ${have.join(', ')}`
        : `healthy, but the members are ${have.join(', ') || 'unknown'}${missing.length ? `; missing ${missing.join(', ')}` : ''}${extra.length ? `; not in klab.yaml ${extra.join(', ')}` : ''}`,
      fix: `klab ssh ${vm.name} -- sudo etcdctl member list (with the env of /etc/profile.d); a member removed by mistake is added back with "etcdctl member add"`,
    },
  ];
}

async function flannel({ ctx, vm, done }: GuestContext): Promise<Found[]> {
  if (!done('flannel')) return [];
  const host = ctx.host(vm.name);
  const env = await host.run(['cat', '/run/flannel/subnet.env'], { allowFailure: true });
  const key = flannelLeaseKey(env.stdout);
  const fix = `klab ssh ${vm.name} -- systemctl cat flanneld (-iface must be ${vm.ip}); sudo journalctl -u flanneld -n 30 (lesson: flannel-wrong-iface)`;
  if (!key) {
    return [
      {
        check: 'flannel',
        status: 'fail',
        detail: 'no subnet lease (/run/flannel/subnet.env)',
        fix,
      },
    ];
  }
  const link = await host.run(['ip', '-d', 'link', 'show', 'flannel.1'], { allowFailure: true });
  const local = /\blocal (\d+\.\d+\.\d+\.\d+)/.exec(link.stdout)?.[1];
  if (link.exitCode !== 0 || local !== vm.ip) {
    return [
      {
        check: 'flannel',
        status: 'fail',
        detail: `flannel.1 ${link.exitCode !== 0 ? 'is missing' : `sends vxlan from ${local ?? 'no address'}, not the private address ${vm.ip}`}`,
        fix,
      },
    ];
  }
  const [taken] = await ownPodsOnBridge(ctx, vm);
  if (taken) {
    return [
      {
        check: 'flannel',
        status: 'fail',
        detail: taken,
        fix: `run the "ip route replace" above with sudo on ${vm.name} (klab ssh ${vm.name}), or klab create: its flannel step puts the route back (lesson: flannel-wrong-iface)`,
      },
    ];
  }
  return [
    {
      check: 'flannel',
      status: 'ok',
      detail: `lease ${key.split('/').pop()}, vxlan from ${vm.ip}`,
      fix,
    },
  ];
}

async function forward({ ctx, vm, done }: GuestContext): Promise<Found[]> {
  if (!done('docker') || !done('flannel')) return [];
  const host = ctx.host(vm.name);
  const rules = await host.run(['iptables', '-S'], { sudo: true, allowFailure: true });
  const policy = forwardPolicy(rules.stdout);
  const flannelRules = flannelForwardRules(rules.stdout, ctx.spec.network.podCidr);
  const docker = await host.run(['systemctl', 'cat', 'docker'], { allowFailure: true });
  const passes = policy === 'ACCEPT' || flannelRules.length > 0;
  const lasts = restoresForwardAccept(docker.stdout) || flannelRules.length > 0;
  return [
    {
      check: 'FORWARD',
      status: !passes ? 'fail' : !lasts ? 'warn' : 'ok',
      detail: !passes
        ? `policy ${policy ?? 'unknown'} and no rule for the pod range ${ctx.spec.network.podCidr}: pods on ${vm.name} cannot be reached from other VMs`
        : !lasts
          ? `policy ${policy} now, but Docker sets DROP at its next start and nothing sets it back`
          : `pod traffic is forwarded (policy ${policy}${flannelRules.length > 0 ? ", flanneld's rules" : ''})`,
      fix: `klab ssh ${vm.name} -- sudo iptables -P FORWARD ACCEPT, and ExecStartPost=/usr/sbin/iptables -P FORWARD ACCEPT in docker's drop-in (lesson: forward-drop)`,
    },
  ];
}

async function resolvConf({ ctx, vm, done }: GuestContext): Promise<Found[]> {
  if (!done('kubelet')) return [];
  const host = ctx.host(vm.name);
  const resolv = await host.run(['cat', '/etc/resolv.conf'], { allowFailure: true });
  const config = await host.run(['cat', '/etc/kubernetes/kubelet-config.yaml'], {
    sudo: true,
    allowFailure: true,
  });
  if (config.exitCode !== 0) return [];
  const loop = resolvLoop(resolv.stdout, kubeletResolvConf(config.stdout));
  return [
    {
      check: 'resolv.conf',
      status: loop.length > 0 ? 'warn' : 'ok',
      detail:
        loop.length > 0
          ? `pods get the loopback nameserver ${loop.join(', ')} from /etc/resolv.conf: a cluster DNS server forwarding there asks itself (a loop)`
          : 'pods get a nameserver they can reach',
      fix: 'resolvConf: /run/systemd/resolve/resolv.conf in /etc/kubernetes/kubelet-config.yaml (the real upstream servers), then restart the kubelet',
    },
  ];
}

/** Every guest check on one VM; a check that cannot run is a finding, not a crash. */
async function checkVm(guest: GuestContext): Promise<GuestFinding[]> {
  const runs: { name: string; run: () => Promise<Found | Found[]> }[] = [
    { name: 'default route', run: () => defaultRoute(guest) },
    { name: 'kernel', run: () => kernel(guest) },
    { name: 'swap', run: () => swap(guest) },
    { name: 'clock', run: () => clock(guest) },
    { name: 'units', run: () => units(guest) },
    { name: 'certificates', run: () => certificates(guest) },
    { name: 'etcd', run: () => etcd(guest) },
    { name: 'flannel', run: () => flannel(guest) },
    { name: 'FORWARD', run: () => forward(guest) },
    { name: 'resolv.conf', run: () => resolvConf(guest) },
  ];
  // All at once: each is a few commands over the VM's one SSH connection (sshd allows 10
  // sessions at a time), and under software emulation each command takes a while.
  const answers = await Promise.all(
    runs.map(async ({ name, run }): Promise<GuestFinding[]> => {
      try {
        const found = await run();
        return (Array.isArray(found) ? found : [found]).map((f) => ({ ...f, vm: guest.vm.name }));
      } catch (error) {
        return [
          {
            vm: guest.vm.name,
            check: name,
            status: 'fail',
            detail: `could not check: ${(error as Error).message}`,
            fix: `klab ssh ${guest.vm.name} and look; "klab status" shows whether it runs`,
          },
        ];
      }
    }),
  );
  return answers.flat();
}

/** The machine-ids of every VM, compared: one finding per VM. */
async function machineIds(ctx: StepContext, vms: readonly VmPlan[]): Promise<GuestFinding[]> {
  const ids = new Map<string, string>();
  for (const vm of vms) {
    const id = await ctx.host(vm.name).run(['cat', '/etc/machine-id'], { allowFailure: true });
    ids.set(vm.name, id.stdout.trim());
  }
  const shared = sharedMachineIds(ids);
  return vms.map((vm) => ({
    vm: vm.name,
    check: 'machine-id',
    status: shared.includes(vm.name) || !ids.get(vm.name) ? 'fail' : 'ok',
    detail: shared.includes(vm.name)
      ? `${ids.get(vm.name)} is shared with ${shared.filter((other) => other !== vm.name && ids.get(other) === ids.get(vm.name)).join(', ')} (flannel and DHCP tell VMs apart by it)`
      : ids.get(vm.name)
        ? 'unique'
        : 'missing',
    fix: `klab ssh ${vm.name} -- 'sudo rm /etc/machine-id && sudo systemd-machine-id-setup', then reboot it`,
  }));
}

/** The guest checks on the VMs given (running ones), VM by VM. */
export async function guestFindings(
  ctx: StepContext,
  state: LabState,
  vms: readonly VmPlan[],
): Promise<GuestFinding[]> {
  const perVm = await Promise.all(
    vms.map((vm) => checkVm({ ctx, vm, done: (step) => Boolean(state.steps[vm.name]?.[step]) })),
  );
  const ids = await machineIds(ctx, vms);
  return vms.flatMap((vm, index) => [
    ...(perVm[index] ?? []),
    ...ids.filter((finding) => finding.vm === vm.name),
  ]);
}

/** klab doctor --guests: a finding for each VM that is not running, the checks on the rest. */
export async function runGuestDoctor(request: LabRequest): Promise<GuestFinding[]> {
  const lab = await openCreatedLab(request);
  const states = await lab.vagrant.status();
  const running = lab.spec.vms.filter((vm) => states.get(vm.name) === 'running');
  const findings: GuestFinding[] = lab.spec.vms
    .filter((vm) => !running.includes(vm))
    .map((vm) => ({
      vm: vm.name,
      check: 'state',
      status: 'fail',
      detail: `not running (${states.get(vm.name) ?? 'not created'}): nothing inside it was checked`,
      fix: '"klab up" starts the lab\'s VMs',
    }));
  if (running.length === 0) return findings;
  const pool = await task(lab.sink, 'Connect to the running VMs over SSH', () =>
    connectAll(
      lab.vagrant,
      running.map((vm) => vm.name),
      lab.sink,
      lab.spec.timeouts.ssh * 1000,
    ),
  );
  try {
    const ctx = stepContext(lab, pool);
    const inside = await task(lab.sink, 'Check inside every VM', () =>
      guestFindings(ctx, lab.state, running),
    );
    return [...findings, ...inside];
  } finally {
    await pool.closeAll();
  }
}
