/**
 * TLS bootstrapping is judged by what the cluster allows (tokens accepted, the approver's
 * questions answered yes), so a learner's own object names pass and a missing grant fails,
 * each named with what grants it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootstrapQuestions,
  subjectAccessReview,
  tlsBootstrapStep,
  tokenProblem,
} from '../../../provision/tls-bootstrap/index.js';
import { firstMaster } from '../../../src/model/topology.js';
import { FakeHost, type Handler } from '../../helpers/fake-host.js';
import { twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const spec = twoVmSpec();
const TOKENS = [{ id: 'abc123', secret: '0123456789abcdef', node: 'node1' }];
let pkiDir: string;

beforeAll(async () => {
  pkiDir = await mkdtemp(path.join(os.tmpdir(), 'klab-bootstrap-'));
  await writeFile(path.join(pkiDir, 'bootstrap-tokens.json'), JSON.stringify(TOKENS));
});
afterAll(() => rm(pkiDir, { recursive: true, force: true }));

describe('the questions of TLS bootstrapping', () => {
  it("asks what the CSR approver asks, for each token and each node, and the apiserver's kubelet access", () => {
    const questions = bootstrapQuestions(TOKENS, ['node1']);
    expect(
      questions.map((q) => `${q.user} ${q.verb} ${q.resource}/${q.subresource} ${q.groups[0]}`),
    ).toEqual([
      'system:bootstrap:abc123 create certificatesigningrequests/nodeclient system:bootstrappers',
      'system:node:node1 create certificatesigningrequests/selfnodeclient system:nodes',
      'kube-apiserver-kubelet-client get nodes/proxy system:authenticated',
    ]);
    const [first] = questions;
    if (!first) throw new Error('no question');
    expect(subjectAccessReview(first)).toEqual({
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: 'system:bootstrap:abc123',
        groups: ['system:bootstrappers', 'system:authenticated'],
        resourceAttributes: {
          verb: 'create',
          group: 'certificates.k8s.io',
          resource: 'certificatesigningrequests',
          subresource: 'nodeclient',
        },
      },
    });
  });

  it('tells a token the apiserver refuses from one that is accepted but not allowed', () => {
    expect(tokenProblem('node1', { exitCode: 0, stdout: 'yes\n', stderr: '' })).toBeUndefined();
    expect(
      tokenProblem('node1', {
        exitCode: 1,
        stdout: '',
        stderr: 'error: You must be logged in to the server (Unauthorized)',
      }),
    ).toMatch(
      /does not accept node1's bootstrap token.*bootstrap-token-<id>.*--enable-bootstrap-token-auth/,
    );
    expect(tokenProblem('node1', { exitCode: 1, stdout: 'no\n', stderr: '' })).toMatch(
      /accepted but may not create a CertificateSigningRequest: bind the ClusterRole system:node-bootstrapper/,
    );
  });
});

describe('the tls-bootstrap step, by outcome', () => {
  const run = async (tokenAnswer: Handler, allowed: (user: string) => boolean) => {
    const master = new FakeHost('master', (argv, options) => {
      if (argv.includes('create') && typeof options.stdin === 'string') {
        // One List of reviews; kubectl prints one answer per line, in order.
        const list = JSON.parse(options.stdin) as {
          kind: string;
          items: { spec: { user: string } }[];
        };
        expect(list.kind).toBe('List');
        expect(argv.at(-1)).toBe('jsonpath={.status.allowed}{"\\n"}');
        return { stdout: `${list.items.map((review) => allowed(review.spec.user)).join('\n')}\n` };
      }
      return undefined;
    });
    const node1 = new FakeHost('node1', tokenAnswer);
    const ctx = testStepContext(spec, { master, node1 }, { pkiDir });
    return {
      problems: (await tlsBootstrapStep.problems?.(ctx, firstMaster(spec))) ?? ['no probe'],
      node1,
    };
  };
  const accepted: Handler = (argv) => (argv.includes('can-i') ? { stdout: 'yes' } : undefined);

  it('is done when every token is accepted and every question is answered yes, whatever the objects are called', async () => {
    const { problems, node1 } = await run(accepted, () => true);
    expect(problems).toEqual([]);
    // The token is tried as the kubelet will present it: node1's own bootstrap kubeconfig.
    expect(node1.calls[0]?.argv).toContain('--kubeconfig=/etc/kubernetes/bootstrap.kubeconfig');
  });

  it('names each missing grant with what grants it', async () => {
    const { problems } = await run(
      accepted,
      (user) => user.startsWith('system:bootstrap:') === false,
    );
    expect(problems).toEqual([
      expect.stringMatching(
        /CSR of node1's kubelet .* would not be approved automatically: bind the ClusterRole system:certificates\.k8s\.io:certificatesigningrequests:nodeclient/,
      ),
    ]);
    const none = await run(accepted, () => false);
    expect(none.problems).toHaveLength(3);
    expect(none.problems[2]).toMatch(/kubectl logs and exec would be Forbidden/);
  });

  it('fails on a token the apiserver refuses, before the kubelet ever tries it', async () => {
    // An answer short of one line per question is no answer.
    const short = new FakeHost('master', (argv) =>
      argv.includes('create') ? { stdout: 'true\n' } : undefined,
    );
    const shortProblems = await tlsBootstrapStep.problems?.(
      testStepContext(spec, { master: short, node1: new FakeHost('node1', accepted) }, { pkiDir }),
      firstMaster(spec),
    );
    expect(shortProblems).toEqual([expect.stringContaining('could not ask the apiserver')]);
    const refused: Handler = (argv) =>
      argv.includes('can-i')
        ? { exitCode: 1, stderr: 'error: You must be logged in to the server (Unauthorized)' }
        : undefined;
    const { problems } = await run(refused, () => true);
    expect(problems).toEqual([expect.stringContaining("does not accept node1's bootstrap token")]);
  });
});
