/**
 * `klab verify`: is the lab a working cluster? The tutorial's own check, made repeatable:
 * etcd, the control plane, nodes that joined by TLS bootstrap, Secrets encrypted at rest,
 * then the PHP/Apache test app by pod IP and ClusterIP from every VM and through the Traefik
 * ingress on every node IP from the host. Every check runs and is reported; any failure
 * fails the command with the list.
 */

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { httpGet } from '../adapters/http.js';
import { inspectCertificate, signedBy } from '../pki/inspect.js';
import {
  INGRESS_HOST,
  renderIngress,
  renderTestApp,
  TEST_APP,
  VERIFY_NAMESPACE,
} from '../render/manifests.js';
import { etcdMembers, firstMaster, KUBELET_CERT_DIR } from '../render/units.js';
import { etcdctl, firstEtcdMember, kubectl, placed } from '../steps/cluster.js';
import { unhealthyComponents } from '../steps/control-plane/index.js';
import { waitFor } from '../steps/guest.js';
import { nodeReady } from '../steps/kubelet/index.js';
import type { StepContext } from '../steps/step.js';
import { KlabError } from './errors.js';
import { task } from './events.js';
import { type LabOptions, openLab, requireCreated, stepContext, withHosts } from './lab-context.js';

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

interface Check {
  name: string;
  /** Returns a one-line detail; throws (any error) when the check fails. */
  run(ctx: StepContext): Promise<string>;
}

const ROLLOUT_TIMEOUT_S = 360;

function fail(message: string): never {
  throw new Error(message);
}

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
      metadata: { name: string };
      status: { podIP?: string; phase?: string };
      spec: { nodeName?: string };
    }[];
  };
  return list.items
    .filter((pod) => pod.status.phase === 'Running' && pod.status.podIP)
    .map((pod) => ({
      name: pod.metadata.name,
      ip: pod.status.podIP ?? '',
      node: pod.spec.nodeName ?? '',
    }));
}

/** curl from a VM; returns the body or throws with curl's complaint. */
async function curlFrom(ctx: StepContext, vm: string, url: string): Promise<string> {
  const result = await ctx
    .host(vm)
    .run(['curl', '-fsS', '--max-time', '10', url], { allowFailure: true });
  if (result.exitCode !== 0)
    fail(`${vm} -> ${url}: ${result.stderr.trim() || `curl exit ${result.exitCode}`}`);
  return result.stdout;
}

export const CHECKS: readonly Check[] = [
  {
    name: 'etcd: every member healthy',
    async run(ctx) {
      const members = etcdMembers(ctx.spec);
      const result = await etcdctl(
        ctx,
        firstEtcdMember(ctx.spec),
        [
          `--endpoints=${members.map((vm) => `https://${vm.ip}:2379`).join(',')}`,
          'endpoint',
          'health',
        ],
        { allowFailure: true },
      );
      // etcdctl prints one line per endpoint (to stderr); count endpoints, not lines.
      const healthy = new Set(
        `${result.stdout}\n${result.stderr}`
          .split('\n')
          .filter((line) => /is healthy/.test(line))
          .map((line) => line.split(' ')[0]),
      );
      if (healthy.size !== members.length)
        fail((result.stderr || result.stdout).trim() || 'no answer');
      return `${healthy.size}/${members.length} members healthy`;
    },
  },
  {
    name: 'kube-apiserver answers on its secure port',
    async run(ctx) {
      const path = ctx.profile.kubernetesMinor >= 16 ? '/readyz' : '/healthz';
      const result = await kubectl(ctx, ['get', '--raw', path], { allowFailure: true });
      if (result.stdout.trim() !== 'ok') fail(`${path}: ${(result.stdout + result.stderr).trim()}`);
      return `${path} ok at https://${firstMaster(ctx.spec).ip}:6443`;
    },
  },
  {
    name: 'scheduler, controller manager and etcd report healthy',
    async run(ctx) {
      const result = await kubectl(ctx, ['get', 'componentstatuses', '-o', 'json']);
      const bad = unhealthyComponents(result.stdout);
      if (bad.length > 0) fail(bad.join('; '));
      return 'all healthy';
    },
  },
  {
    name: 'every node is Ready',
    async run(ctx) {
      const nodes = placed(ctx.spec, 'nodes');
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
      if (problems.length > 0) fail(problems.join('; '));
      return nodes.map((vm) => vm.name).join(', ');
    },
  },
  {
    name: 'kubelets joined by TLS bootstrap (client certificates signed by the lab CA)',
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
    name: 'Secrets are encrypted at rest in etcd',
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
      const raw = await etcdctl(ctx, firstEtcdMember(ctx.spec), [
        'get',
        `/registry/secrets/default/${name}`,
        '--print-value-only',
      ]);
      if (!raw.stdout.startsWith('k8s:enc:aescbc:v1:'))
        fail('the Secret is stored in plain text in etcd');
      return 'stored as k8s:enc:aescbc:v1';
    },
  },
  {
    name: 'test app and Traefik ingress deployed and rolled out',
    async run(ctx) {
      const replicas = placed(ctx.spec, 'nodes').length;
      await kubectl(ctx, ['apply', '-f', '-'], { stdin: renderIngress(ctx.profile) });
      await kubectl(ctx, ['apply', '-f', '-'], {
        stdin: renderTestApp({ profile: ctx.profile, replicas }),
      });
      const timeout = { timeoutMs: (ROLLOUT_TIMEOUT_S + 30) * 1000 };
      await kubectl(
        ctx,
        [
          '-n',
          VERIFY_NAMESPACE,
          'rollout',
          'status',
          `deployment/${TEST_APP}`,
          `--timeout=${ROLLOUT_TIMEOUT_S}s`,
        ],
        timeout,
      );
      await kubectl(
        ctx,
        [
          '-n',
          'kube-system',
          'rollout',
          'status',
          'daemonset/traefik-ingress',
          `--timeout=${ROLLOUT_TIMEOUT_S}s`,
        ],
        timeout,
      );
      return `${replicas} replica(s) of ${ctx.profile.testAppImage.image}, Traefik ${ctx.profile.ingressImage.image}`;
    },
  },
  {
    name: 'test app by pod IP from every VM',
    async run(ctx) {
      const pods = await podsOfTestApp(ctx);
      if (pods.length === 0) fail('no running test-app pod');
      for (const vm of ctx.spec.vms) {
        for (const pod of pods) {
          const body = await curlFrom(ctx, vm.name, `http://${pod.ip}/`);
          if (!body.includes(`served by: ${pod.name}`))
            fail(`${vm.name} -> ${pod.ip}: unexpected answer`);
        }
      }
      return `${pods.map((pod) => `${pod.ip} (${pod.node})`).join(', ')} from ${ctx.spec.vms.length} VMs`;
    },
  },
  {
    name: 'test app by ClusterIP from every VM',
    async run(ctx) {
      const svc = await kubectl(ctx, [
        '-n',
        VERIFY_NAMESPACE,
        'get',
        'service',
        TEST_APP,
        '-o',
        'jsonpath={.spec.clusterIP}',
      ]);
      const ip = svc.stdout.trim();
      for (const vm of ctx.spec.vms) {
        const body = await curlFrom(ctx, vm.name, `http://${ip}/`);
        if (!body.includes('klab test app')) fail(`${vm.name} -> ${ip}: unexpected answer`);
      }
      return `${ip}:80 from ${ctx.spec.vms.length} VMs`;
    },
  },
  {
    name: 'test app through the ingress on every node IP, from the host',
    async run(ctx) {
      const nodes = placed(ctx.spec, 'nodes');
      for (const vm of nodes) {
        await waitFor(
          ctx,
          {
            what: `http://${vm.ip}/ (Host: ${INGRESS_HOST})`,
            vm: vm.name,
            timeoutMs: 90_000,
            hint: 'Look at Traefik: klab ssh master -- kubectl -n kube-system logs ds/traefik-ingress',
          },
          async () => {
            const response = await httpGet(`http://${vm.ip}/`, { Host: INGRESS_HOST });
            const body = response.body.toString('utf8');
            return response.status === 200 && body.includes('klab test app')
              ? true
              : `HTTP ${response.status}`;
          },
        );
      }
      return `http://{${nodes.map((vm) => vm.ip).join(',')}}/ with Host: ${INGRESS_HOST}`;
    },
  },
];

/** Runs every check against an open lab (also the end of `klab create`). */
export async function runChecks(ctx: StepContext): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const check of CHECKS) {
    const result = await task(
      ctx.sink,
      check.name,
      async () => check.run(ctx),
      (detail) => detail,
    ).then(
      (detail): CheckResult => ({ name: check.name, ok: true, detail }),
      (error: unknown): CheckResult => ({
        name: check.name,
        ok: false,
        detail:
          error instanceof KlabError
            ? `${error.message}${error.outputTail ? `\n${error.outputTail}` : ''}`
            : (error as Error).message,
      }),
    );
    results.push(result);
  }
  const failed = results.filter((result) => !result.ok);
  if (failed.length > 0) {
    throw new KlabError(
      'KLAB_VERIFY_FAILED',
      `${failed.length} of ${results.length} cluster checks failed`,
      {
        details: failed.map((result) => `${result.name}: ${result.detail}`),
        hint: 'Each failure names what it tried; "klab status" and "klab ssh <vm>" help look closer. Reset to a checkpoint with "klab reset after-kubelet" or repair with "klab create".',
      },
    );
  }
  return results;
}

export async function verifyLab(
  options: LabOptions,
  sink: Parameters<typeof openLab>[1],
): Promise<CheckResult[]> {
  const lab = await openLab(options, sink);
  requireCreated(lab);
  const started = Date.now();
  const results = await withHosts(lab, (pool) => runChecks(stepContext(lab, pool)));
  sink.emit({
    kind: 'result',
    text: `All ${results.length} cluster checks passed (${Math.round((Date.now() - started) / 1000)} s).`,
  });
  return results;
}
