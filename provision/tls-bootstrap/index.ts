/**
 * TLS bootstrapping (what made the tutorial's `kubectl get csr` empty): one bootstrap token
 * per node, RBAC so token holders may ask for a node client certificate, and automatic
 * approval of those requests and of renewals. Kubelets then join with the token only.
 * And the other direction: the binding that lets kube-apiserver use the kubelets' API
 * (logs, exec), since its kubelet-client certificate carries no group of its own.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { firstMaster } from '../../src/model/topology.js';
import type { BootstrapToken } from '../../src/pki/secrets.js';
import { renderTlsBootstrap } from '../../src/render/manifests.js';
import { kubectl, probeStep } from '../lib/cluster.js';
import type { StepContext } from '../lib/step.js';

async function manifest(ctx: StepContext): Promise<string> {
  const tokens = JSON.parse(
    await readFile(path.join(ctx.pkiDir, 'bootstrap-tokens.json'), 'utf8'),
  ) as BootstrapToken[];
  return renderTlsBootstrap(tokens);
}

export const tlsBootstrapStep = probeStep({
  id: 'tls-bootstrap',
  title:
    "TLS bootstrap: node tokens, RBAC and automatic approval of node CSRs; the apiserver's access to kubelets",
  on: (spec) => [firstMaster(spec)],
  async problems(ctx) {
    const found = await kubectl(ctx, ['get', '-f', '-', '-o', 'name'], {
      stdin: await manifest(ctx),
      allowFailure: true,
    });
    return found.exitCode === 0
      ? []
      : [`missing: ${found.stderr.trim().split('\n').slice(0, 3).join('; ')}`];
  },
  async apply(ctx) {
    await kubectl(ctx, ['apply', '-f', '-'], { stdin: await manifest(ctx) });
  },
  hint: (vm) => `See what exists: klab ssh ${vm.name} -- kubectl -n kube-system get secrets`,
});
