/**
 * TLS bootstrapping (what made the tutorial's `kubectl get csr` empty): one bootstrap token
 * per node, RBAC so token holders may ask for a node client certificate, and automatic
 * approval of those requests and of renewals. Kubelets then join with the token only.
 * And the other direction: the binding that lets kube-apiserver use the kubelets' API
 * (logs, exec), since its kubelet-client certificate carries no group of its own.
 *
 * Done is judged by what the cluster allows, not by the names of klab's objects: each
 * node's token, as its kubelet will present it, may create a CSR; the approver would
 * approve it and the renewals; the apiserver may use the kubelets' API. A learner who
 * builds it by hand with other names passes.
 */
import { GUEST } from '../../src/model/guest-paths.js';
import type { VmPlan } from '../../src/model/spec.js';
import { firstMaster, nodes } from '../../src/model/topology.js';
import { readBootstrapTokens } from '../../src/pki/generate.js';
import { APISERVER_KUBELET_USER } from '../../src/pki/plan.js';
import type { BootstrapToken } from '../../src/pki/secrets.js';
import { renderTlsBootstrap } from '../../src/render/manifests.js';
import { kubectl, probeStep } from '../lib/cluster.js';
import type { Step, StepContext } from '../lib/step.js';

function tokensOf(ctx: StepContext): Promise<BootstrapToken[]> {
  return readBootstrapTokens(ctx.pkiDir);
}

/** Where each node's kubelet finds its bootstrap token (see provision/certs). */
export const BOOTSTRAP_KUBECONFIG = `${GUEST.k8sDir}/bootstrap.kubeconfig`;

/** A question for the authorizer: may this user (in these groups) do this? */
export interface AccessQuestion {
  user: string;
  groups: string[];
  verb: string;
  group: string;
  resource: string;
  subresource: string;
  /** What a "no" means for the lab, and what grants it. */
  ifDenied: string;
}

/**
 * What the cluster must allow for TLS bootstrapping, beyond the tokens themselves: the
 * CSR approver asks exactly these questions (certificatesigningrequests/nodeclient for a
 * first certificate, /selfnodeclient for a renewal) before approving.
 */
export function bootstrapQuestions(
  tokens: readonly BootstrapToken[],
  nodeNames: readonly string[],
): AccessQuestion[] {
  const csr = { group: 'certificates.k8s.io', resource: 'certificatesigningrequests' };
  return [
    ...tokens.map((token) => ({
      user: `system:bootstrap:${token.id}`,
      groups: ['system:bootstrappers', 'system:authenticated'],
      verb: 'create',
      ...csr,
      subresource: 'nodeclient',
      ifDenied: `the CSR of ${token.node}'s kubelet (user system:bootstrap:${token.id}, group system:bootstrappers) would not be approved automatically: bind the ClusterRole system:certificates.k8s.io:certificatesigningrequests:nodeclient to the group system:bootstrappers`,
    })),
    ...nodeNames.map((node) => ({
      user: `system:node:${node}`,
      groups: ['system:nodes', 'system:authenticated'],
      verb: 'create',
      ...csr,
      subresource: 'selfnodeclient',
      ifDenied: `${node}'s kubelet could not renew its certificate (user system:node:${node}): bind the ClusterRole system:certificates.k8s.io:certificatesigningrequests:selfnodeclient to the group system:nodes`,
    })),
    {
      user: APISERVER_KUBELET_USER,
      groups: ['system:authenticated'],
      verb: 'get',
      group: '',
      resource: 'nodes',
      subresource: 'proxy',
      ifDenied: `kube-apiserver (user ${APISERVER_KUBELET_USER}) may not use the kubelets' API, so kubectl logs and exec would be Forbidden: bind the ClusterRole system:kubelet-api-admin to that user`,
    },
  ];
}

/** The SubjectAccessReview that asks `question` (authorization.k8s.io/v1: 1.6 and later). */
export function subjectAccessReview(question: AccessQuestion): object {
  return {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: {
      user: question.user,
      groups: question.groups,
      resourceAttributes: {
        verb: question.verb,
        group: question.group,
        resource: question.resource,
        subresource: question.subresource,
      },
    },
  };
}

/**
 * What `kubectl auth can-i create certificatesigningrequests`, run with a node's bootstrap
 * kubeconfig, says about the token in it.
 */
export function tokenProblem(
  node: string,
  result: { exitCode: number; stdout: string; stderr: string },
): string | undefined {
  const answer = result.stdout.trim();
  if (answer === 'yes') return undefined;
  const error = result.stderr.trim();
  if (/unauthorized/i.test(error) || /unauthorized/i.test(answer)) {
    return `the apiserver does not accept ${node}'s bootstrap token (in ${BOOTSTRAP_KUBECONFIG} on ${node}): it needs a Secret bootstrap-token-<id> of type bootstrap.kubernetes.io/token in kube-system with that token, usage-bootstrap-authentication "true", and kube-apiserver --enable-bootstrap-token-auth`;
  }
  if (answer === 'no') {
    return `${node}'s bootstrap token is accepted but may not create a CertificateSigningRequest: bind the ClusterRole system:node-bootstrapper to the group system:bootstrappers`;
  }
  return `${node}: kubectl with ${BOOTSTRAP_KUBECONFIG} failed: ${error.split('\n').pop() || `exit ${result.exitCode}`}`;
}

async function tokenAccepted(ctx: StepContext, node: VmPlan): Promise<string[]> {
  const result = await ctx
    .host(node.name)
    .run(
      [
        `${GUEST.bin}/kubectl`,
        `--kubeconfig=${BOOTSTRAP_KUBECONFIG}`,
        'auth',
        'can-i',
        'create',
        'certificatesigningrequests.certificates.k8s.io',
      ],
      { sudo: true, allowFailure: true, timeoutMs: 120_000 },
    );
  const problem = tokenProblem(node.name, result);
  return problem ? [problem] : [];
}

/**
 * Asks every question in one kubectl call (a v1 List of SubjectAccessReviews: kubectl creates
 * and prints them in order, one answer per line); under TCG each kubectl costs seconds.
 */
async function denied(ctx: StepContext, questions: readonly AccessQuestion[]): Promise<string[]> {
  if (questions.length === 0) return [];
  const result = await kubectl(
    ctx,
    ['create', '-f', '-', '-o', 'jsonpath={.status.allowed}{"\\n"}'],
    {
      stdin: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: questions.map(subjectAccessReview),
      }),
      allowFailure: true,
    },
  );
  const answers = result.stdout.trim().split('\n');
  if (result.exitCode !== 0 || answers.length !== questions.length) {
    return [
      `could not ask the apiserver who may do what (SubjectAccessReviews): ${result.stderr.trim() || result.stdout.trim()}`,
    ];
  }
  return questions.filter((_, i) => answers[i]?.trim() !== 'true').map((q) => q.ifDenied);
}

export const tlsBootstrapStep: Step = {
  // The master holds a bootstrap token for every node: a node added later needs its own.
  coversLab: true,
  ...probeStep({
    id: 'tls-bootstrap',
    title:
      "TLS bootstrap: node tokens, RBAC and automatic approval of node CSRs; the apiserver's access to kubelets",
    on: (spec) => [firstMaster(spec)],
    async problems(ctx) {
      const tokens = await tokensOf(ctx);
      const nodeVms = nodes(ctx.spec);
      const questions = bootstrapQuestions(
        tokens,
        nodeVms.map((node) => node.name),
      );
      const [perNode, grants] = await Promise.all([
        Promise.all(nodeVms.map((node) => tokenAccepted(ctx, node))),
        denied(ctx, questions),
      ]);
      return [...perNode.flat(), ...grants];
    },
    async apply(ctx) {
      await kubectl(ctx, ['apply', '-f', '-'], { stdin: renderTlsBootstrap(await tokensOf(ctx)) });
    },
    hint: (vm) =>
      `See what exists: klab ssh ${vm.name} -- kubectl -n kube-system get secrets; kubectl get clusterrolebindings`,
  }),
};
