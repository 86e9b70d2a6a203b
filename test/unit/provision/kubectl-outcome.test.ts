/** The kubectl lesson's check: what kubectl and etcdctl do for vagrant, not which file made it. */
import { describe, expect, it } from 'vitest';
import { kubectlOutcome } from '../../../provision/kubectl/index.js';
import { FakeHost, type Handler } from '../../helpers/fake-host.js';
import { twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const spec = twoVmSpec();

function outcome(answers: {
  version?: boolean;
  skip?: string;
  admin?: string;
  etcd?: boolean;
  sudo?: boolean[];
}) {
  const sudo: boolean[] = [];
  const handler: Handler = (argv, options) => {
    sudo.push(options.sudo === true);
    const line = argv.join(' ');
    if (line.includes('get --raw /version')) {
      return answers.version === false
        ? { exitCode: 1, stderr: 'error: You must be logged in to the server (Unauthorized)' }
        : { stdout: '{"gitVersion":"v1.20.2"}' };
    }
    if (line.includes('insecure-skip-tls-verify')) return { stdout: answers.skip ?? '' };
    if (line.includes('auth can-i')) return { stdout: answers.admin ?? 'yes' };
    if (argv[0] === 'bash') {
      return answers.etcd === false
        ? {
            exitCode: 1,
            // etcdctl 3.4 writes its client's JSON warnings before its own words.
            stderr:
              '{"level":"warn","msg":"retrying of unary invoker failed"}\nError: open /etc/etcd/pki/ca.crt: permission denied\nmore',
          }
        : { stdout: 'healthy' };
    }
    return undefined;
  };
  const master = new FakeHost('master', handler);
  const ctx = testStepContext(spec, { master });
  const vm = spec.vms[0];
  if (!vm) throw new Error('no VM');
  return { run: () => kubectlOutcome(ctx, vm), sudo };
}

describe('the kubectl step, by its result', () => {
  it('passes when vagrant is the admin through a verified connection and etcdctl works', async () => {
    const check = outcome({});
    expect(await check.run()).toEqual([]);
    // Everything as the learner: no sudo.
    expect(check.sudo.every((used) => !used)).toBe(true);
  });

  it('names what kubectl says when it cannot reach the apiserver', async () => {
    expect(await outcome({ version: false }).run()).toEqual([
      'kubectl as vagrant fails: error: You must be logged in to the server (Unauthorized)',
    ]);
  });

  it('refuses a kubeconfig that skips the certificate check, or a user who is not the admin', async () => {
    const problems = await outcome({ skip: 'true', admin: 'no' }).run();
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain('insecure-skip-tls-verify');
    expect(problems[1]).toContain('not the cluster admin');
  });

  it('wants etcdctl set up in a login shell too', async () => {
    const problems = await outcome({ etcd: false }).run();
    expect(problems).toEqual([
      'etcdctl in a login shell of vagrant fails: Error: open /etc/etcd/pki/ca.crt: permission denied (its ETCDCTL_* settings, /etc/profile.d)',
    ]);
  });
});
