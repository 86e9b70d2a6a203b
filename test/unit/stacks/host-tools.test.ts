import { mkdir, mkdtemp, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { kubectl } from '../../../provision/lib/cluster.js';
import type { StepContext } from '../../../provision/lib/step.js';
import { hostKubectlEnv } from '../../../src/app/lab.js';
import type { RemoteRunOptions } from '../../../src/model/remote.js';
import {
  hostRunsGuestPrograms,
  hostTool,
  hostToolFile,
  kubectlMember,
} from '../../../src/stacks/host-tools.js';
import { installProfile } from '../../../src/stacks/install.js';

async function archive(): Promise<{ file: string; root: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-host-tools-'));
  await mkdir(path.join(dir, 'src', 'kubernetes', 'bin'), { recursive: true });
  await writeFile(
    path.join(dir, 'src', 'kubernetes', 'bin', 'kubectl'),
    '#!/bin/sh\necho "kubectl $*"\n',
    { mode: 0o644 },
  );
  await writeFile(path.join(dir, 'src', 'kubernetes', 'bin', 'kubelet'), 'not for the host\n');
  const file = path.join(dir, 'kubernetes.tar.gz');
  await execa('tar', ['-czf', file, '-C', path.join(dir, 'src'), 'kubernetes']);
  return { file, root: path.join(dir, 'cache') };
}

describe("the stack's kubectl on the host", () => {
  it('is found in the install profile of both stacks', () => {
    expect(kubectlMember(installProfile('debian').archives)).toEqual({
      artifact: 'kubernetes',
      member: 'kubernetes/bin/kubectl',
    });
    expect(kubectlMember(installProfile('v1.11.1').archives)).toEqual({
      artifact: 'kubernetes-client',
      member: 'kubernetes/client/bin/kubectl',
    });
    expect(kubectlMember([{ artifact: 'flannel', members: ['flannel/flanneld'] }])).toBe(undefined);
  });

  it('is used only where the VMs programs run as they are (linux/amd64)', () => {
    expect(hostRunsGuestPrograms('linux', 'x64')).toBe(true);
    expect(hostRunsGuestPrograms('linux', 'arm64')).toBe(false);
    expect(hostRunsGuestPrograms('darwin', 'x64')).toBe(false);
  });

  it('is taken out of the archive once, executable, and runs', async () => {
    const { file, root } = await archive();
    const [first, second] = await Promise.all([
      hostTool(file, 'kubernetes/bin/kubectl', { root }),
      hostTool(file, 'kubernetes/bin/kubectl', { root }),
    ]);
    expect(first).toBe(second);
    expect(path.basename(first)).toBe('kubectl');
    expect((await stat(first)).mode & 0o777).toBe(0o755);
    expect((await execa(first, ['get', 'nodes'])).stdout).toBe('kubectl get nodes');
    // Nothing else of the archive is unpacked beside it.
    expect((await execa('ls', ['-A', path.dirname(first)])).stdout).toBe('kubectl');
  });

  it('is taken out again when the archive is rebuilt (another size or time)', async () => {
    const { file, root } = await archive();
    const before = await hostTool(file, 'kubernetes/bin/kubectl', { root });
    await utimes(file, new Date(), new Date(Date.now() + 60_000));
    const info = await stat(file);
    const after = hostToolFile(file, info.size, info.mtimeMs, 'kubernetes/bin/kubectl', root);
    expect(after).not.toBe(before);
    expect(await hostTool(file, 'kubernetes/bin/kubectl', { root })).toBe(after);
  });

  it('fails with KLAB_ARTIFACT_UNAVAILABLE when the archive has no such member', async () => {
    const { file, root } = await archive();
    await expect(hostTool(file, 'kubernetes/bin/nothing', { root })).rejects.toMatchObject({
      code: 'KLAB_ARTIFACT_UNAVAILABLE',
    });
  });
});

describe('kubectl as cluster admin', () => {
  function context(adminKubectl?: StepContext['adminKubectl']) {
    const onMaster: string[][] = [];
    const ctx = {
      spec: { vms: [{ name: 'master', role: 'master', ip: '10.0.0.10' }] },
      host: () => ({
        run: async (argv: readonly string[]) => {
          onMaster.push([...argv]);
          return { exitCode: 0, stdout: 'from the master', stderr: '' };
        },
      }),
      ...(adminKubectl ? { adminKubectl } : {}),
    } as unknown as StepContext;
    return { ctx, onMaster };
  }

  it('runs from the host when the context can, with a default timeout', async () => {
    const seen: [readonly string[], RemoteRunOptions][] = [];
    const { ctx, onMaster } = context(async (args, options) => {
      seen.push([args, options]);
      return { exitCode: 0, stdout: 'from the host', stderr: '' };
    });
    const answer = await kubectl(ctx, ['get', 'nodes'], { allowFailure: true });
    expect(answer.stdout).toBe('from the host');
    expect(seen).toEqual([[['get', 'nodes'], { timeoutMs: 120_000, allowFailure: true }]]);
    expect(onMaster).toEqual([]);
  });

  it('runs on the first master otherwise, with the admin kubeconfig there', async () => {
    const { ctx, onMaster } = context();
    expect((await kubectl(ctx, ['get', 'nodes'])).stdout).toBe('from the master');
    expect(onMaster).toEqual([
      ['/opt/k8s/bin/kubectl', '--kubeconfig=/etc/kubernetes/admin.kubeconfig', 'get', 'nodes'],
    ]);
  });
});

describe("klab's kubectl on the host ignores the user's download proxy", () => {
  it('blanks every proxy variable, upper and lower case, and keeps what the call sets', () => {
    const env = hostKubectlEnv({ KUBECTL_EXTRA: '1' });
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY']) {
      expect(env[name]).toBe('');
    }
    expect(env.KUBECTL_EXTRA).toBe('1');
  });
});
