/**
 * x07 (node part): kubelet on every node. It joins through TLS bootstrapping: with only a
 * bootstrap token it asks for a client certificate (a CSR you can see with
 * `kubectl get csr`), which the controller manager approves and signs; it serves its own
 * API with the certificate klab issued. Done when the node is Ready.
 * The unit: provision/kubelet/kubelet.service.ejs; its config, a KubeletConfiguration.
 */
import { GUEST, KUBELET_CERT_DIR } from '../../src/model/guest-paths.js';
import type { LabSpec, VmPlan } from '../../src/model/spec.js';
import { clusterDnsIp, firstMaster } from '../../src/model/topology.js';
import { readBootstrapTokens } from '../../src/pki/generate.js';
import type { InstallProfile } from '../../src/stacks/install.js';
import { kubectl } from '../lib/cluster.js';
import { commandOk, nodeIsReady } from '../lib/probes.js';
import { journalHint, serviceStep } from '../lib/service-step.js';
import type { StepContext } from '../lib/step.js';
import { renderTemplate } from '../lib/template.js';
import { yamlFile } from '../lib/yaml-file.js';

export function renderKubeletConfig(
  spec: LabSpec,
  vm: VmPlan,
  options: { resolvConf: string; runtimeRequestTimeoutS: number },
): string {
  return yamlFile('Managed by klab.', {
    kind: 'KubeletConfiguration',
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    address: vm.ip,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: `${GUEST.pki}/ca.crt` },
    },
    authorization: { mode: 'Webhook' },
    cgroupDriver: 'cgroupfs',
    // Every pod's resolv.conf: the cluster DNS Service (klab verify deploys CoreDNS behind it).
    clusterDNS: [clusterDnsIp(spec)],
    clusterDomain: spec.network.clusterDomain,
    readOnlyPort: 0,
    // The serving certificate klab issued (kubelet serving CSRs are never auto-approved);
    // the client certificate comes from TLS bootstrapping and rotates.
    tlsCertFile: `${GUEST.pki}/kubelet-${vm.name}.crt`,
    tlsPrivateKeyFile: `${GUEST.pki}/kubelet-${vm.name}.key`,
    rotateCertificates: true,
    failSwapOn: true,
    resolvConf: options.resolvConf,
    // How long a call into Docker (a pod's sandbox starting) may take before the kubelet
    // kills it and starts over: longer under software emulation (model/tuning.ts).
    runtimeRequestTimeout: `${options.runtimeRequestTimeoutS}s`,
  });
}

export function renderKubeletUnit(profile: InstallProfile, vm: VmPlan): string {
  return renderTemplate('kubelet', 'kubelet.service.ejs', {
    vm,
    paths: GUEST,
    certDir: KUBELET_CERT_DIR,
    pauseImage: profile.pauseImage.image,
    allowPrivileged: profile.kubernetesMinor < 15,
  });
}

async function resolvConf(ctx: StepContext, vm: VmPlan): Promise<string> {
  // Ubuntu's systemd-resolved stub (127.0.0.53) would make cluster DNS loop.
  const resolved = await ctx
    .host(vm.name)
    .run(['test', '-e', '/run/systemd/resolve/resolv.conf'], { allowFailure: true });
  return resolved.exitCode === 0 ? '/run/systemd/resolve/resolv.conf' : '/etc/resolv.conf';
}

export const kubeletStep = serviceStep({
  id: 'kubelet',
  title: 'kubelet on the nodes, joined by TLS bootstrap; nodes Ready',
  on: 'nodes',
  units: ['kubelet'],
  files: async (ctx, vm) => [
    {
      path: `${GUEST.k8sDir}/kubelet-config.yaml`,
      content: renderKubeletConfig(ctx.spec, vm, {
        resolvConf: await resolvConf(ctx, vm),
        runtimeRequestTimeoutS: ctx.tuning.kubeletRuntimeRequestTimeoutS,
      }),
      mode: 0o644,
    },
    {
      path: `${GUEST.units}/kubelet.service`,
      content: renderKubeletUnit(ctx.profile, vm),
      mode: 0o644,
    },
  ],
  probes: [
    commandOk(
      ['test', '-s', `${KUBELET_CERT_DIR}/kubelet-client-current.pem`],
      'no client certificate from TLS bootstrap yet',
      { sudo: true },
    ),
    nodeIsReady(),
  ],
  async before(ctx, vm) {
    await ctx
      .host(vm.name)
      .run(['mkdir', '-p', '/var/lib/kubelet', KUBELET_CERT_DIR], { sudo: true });
  },
  // Under software emulation the nodes join one after the other: three kubelets bootstrapping
  // at once (CSRs, node registration, first list and watch of everything) starved the
  // emulated API server until the controller manager, which approves the CSRs, crash-looped.
  oneAtATime: (ctx) => ctx.tuning.accelerator === 'tcg',
  hint: (vm) =>
    `${journalHint(vm, ['kubelet'], 80)}; and at the node requests: klab ssh master -- kubectl get csr`,
  alive: async (problems, ctx, vm) =>
    nodeJoinedButSlow(problems) ||
    (bootstrapPending(problems) && ((await csrAwaitsApprover(ctx, vm)) ?? false)),
});

/** The only problem is that TLS bootstrap has not given the node its certificate yet. */
export function bootstrapPending(problems: readonly string[]): boolean {
  return (
    problems.length > 0 &&
    problems.every((problem) =>
      /no client certificate from TLS bootstrap yet|^node \S+ is not registered|^the API server did not answer about node /.test(
        problem,
      ),
    )
  );
}

/** What `kubectl get csr -o json` says of one request. */
interface CsrItem {
  spec?: { username?: string; signerName?: string };
  status?: { conditions?: { type?: string }[] };
}

/**
 * Slow, not broken: the node asked (its CSR, made with its own bootstrap token, is there and
 * neither approved nor denied) and kube-controller-manager, which approves it, is not
 * serving yet: it restarted (on a starved API server it exits when its requests time out,
 * and systemd starts it again) or it runs since less than five minutes. Returns what it
 * waits for, or undefined when the wait is for something that will not come by itself
 * (no request at all: the token or the apiserver address is wrong; a denied request).
 */
export async function csrAwaitsApprover(ctx: StepContext, vm: VmPlan): Promise<string | undefined> {
  const token = (await readBootstrapTokens(ctx.pkiDir)).find((entry) => entry.node === vm.name);
  if (!token) return undefined;
  const listed = await kubectl(ctx, ['get', 'csr', '-o', 'json', '--request-timeout=30s'], {
    allowFailure: true,
  });
  // The control plane answered at its own step; not answering now is a starved or restarting
  // API server (the kubelets' bootstrap loads it), which comes back by itself.
  if (listed.exitCode !== 0) return apiserverBusy(listed.stderr);
  const items = (JSON.parse(listed.stdout) as { items?: CsrItem[] }).items ?? [];
  const mine = items.filter((item) => item.spec?.username === `system:bootstrap:${token.id}`);
  const pending = mine.filter((item) => (item.status?.conditions ?? []).length === 0);
  if (pending.length === 0) return undefined;
  const master = firstMaster(ctx.spec);
  const shown = await ctx
    .host(master.name)
    .run(
      [
        'systemctl',
        'show',
        'kube-controller-manager',
        '-p',
        'NRestarts,ActiveState,ActiveEnterTimestampMonotonic',
      ],
      { allowFailure: true },
    );
  const field = (name: string) => new RegExp(`^${name}=(.*)$`, 'm').exec(shown.stdout)?.[1] ?? '';
  const restarts = Number(field('NRestarts') || 0);
  const uptime = await ctx.host(master.name).run(['cat', '/proc/uptime'], { allowFailure: true });
  const nowS = Number(uptime.stdout.split(' ')[0] ?? 0);
  const sinceS = nowS - Number(field('ActiveEnterTimestampMonotonic') || 0) / 1e6;
  const state = field('ActiveState');
  if (restarts === 0 && state === 'active' && sinceS > 300) return undefined;
  return `its CSR waits for kube-controller-manager (${state}, ${restarts} restart(s), up ${Math.max(0, Math.round(sinceS))} s)`;
}

/** Why kubectl got no answer, when it is the API server being slow (a timeout, a refused connection while it restarts). */
export function apiserverBusy(stderr: string): string | undefined {
  const slow =
    /Client\.Timeout|context deadline exceeded|i\/o timeout|TLS handshake timeout|timed out|connection refused|was refused|the server is currently unable|Too many requests|EOF/i;
  if (!slow.test(stderr)) return undefined;
  const line = stderr.trim().split('\n').at(-1)?.slice(0, 160) ?? '';
  return `the API server does not answer in time while the node joins (${line})`;
}

/**
 * The node joined (it has a client certificate and posted its status) but is not Ready
 * now because its status reports do not get through in time ("Kubelet stopped posting
 * node status": the apiserver or the host is starved), or its container runtime answers
 * slowly (PLEG). Slow, not broken. A node that never got a certificate or never
 * registered is not in this list: that is a bootstrap problem, reported at the deadline.
 */
export function nodeJoinedButSlow(problems: readonly string[]): boolean {
  return (
    problems.length > 0 &&
    problems.every((problem) =>
      /^node \S+ is not Ready: .*(stopped posting node status|PLEG is not healthy)/.test(problem),
    )
  );
}
