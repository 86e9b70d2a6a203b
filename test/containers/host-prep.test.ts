import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDefaultRoutes } from '../../provision/default-route/index.js';
import { HOST_PREP_STEPS } from '../../provision/index.js';
import type { StepContext } from '../../provision/lib/step.js';
import { MAX_COMMANDS_PER_VM, type SshHost } from '../../src/adapters/ssh.js';
import { runSteps } from '../../src/app/pipeline.js';
import { validateSpec } from '../../src/model/spec-file.js';
import { emptyState } from '../../src/model/state.js';
import { testStepContext } from '../helpers/step-context.js';
import {
  attachNetwork,
  createNetwork,
  type SystemdNode,
  startSystemdNode,
  systemdImage,
  type TestNetwork,
} from '../helpers/systemd-container.js';

// The containers' eth0 network plays the lab's management network: its .1 is the gateway.
const spec = validateSpec(
  {
    name: 'ct',
    network: { subnet: '10.213.0.0/24', managementSubnet: '10.214.0.0/24' },
    nodes: [
      { name: 'master', role: 'master', memory: 1024 },
      { name: 'node1', memory: 1024 },
    ],
  },
  'ct',
  'test',
);

let network: TestNetwork;
// The lab's private network (eth1), where the internal ranges are routed.
let labNetwork: TestNetwork;
const nodes: Record<string, SystemdNode> = {};
const hosts: Record<string, SshHost> = {};

function context(): StepContext {
  return testStepContext(spec, hosts);
}

async function sh(vm: string, script: string): Promise<string> {
  const host = hosts[vm];
  if (!host) throw new Error(`no host ${vm}`);
  return (await host.run(['sh', '-c', script], { sudo: true })).stdout;
}

async function routes(vm: string) {
  return parseDefaultRoutes(await sh(vm, 'ip -4 route show default'));
}

describe('host preparation over SSH in systemd containers', () => {
  beforeAll(async () => {
    const image = await systemdImage();
    network = await createNetwork('klab-ct-mgmt', '10.214.0.0/24', '10.214.0.1');
    // Docker re-attaches networks in name order on a restart: "mgmt" < "priv" keeps eth0/eth1.
    labNetwork = await createNetwork('klab-ct-priv', '10.213.0.0/24', '10.213.0.1');
    for (const vm of spec.vms) {
      const node = await startSystemdNode(image, vm.name, network);
      await attachNetwork(node.container, labNetwork, vm.ip);
      nodes[vm.name] = node;
      hosts[vm.name] = await node.connect();
    }
  });

  afterAll(async () => {
    for (const host of Object.values(hosts)) await host.close();
    for (const node of Object.values(nodes)) await node.container.stop({ timeout: 5 });
    await network?.remove();
    await labNetwork?.remove();
  });

  it('starts from a broken state: no default route, a loopback hostname line, a shared machine-id', async () => {
    for (const vm of ['master', 'node1']) {
      await sh(vm, 'ip -4 route del default || true');
      await sh(vm, `printf '127.0.1.1\\t%s %s\\n' "$(hostname)" "$(hostname)" >> /etc/hosts`);
      await sh(vm, 'echo 0123456789abcdef0123456789abcdef > /etc/machine-id');
      expect(await routes(vm)).toEqual([]);
    }
  });

  it('runs the steps: every one applies on both VMs and verifies', async () => {
    const outcomes = await runSteps(HOST_PREP_STEPS, context(), emptyState());
    expect(outcomes.map((o) => `${o.step}@${o.vm}:${o.result}`)).toEqual([
      'default-route@master:applied',
      'default-route@node1:applied',
      'hosts-file@master:applied',
      'hosts-file@node1:applied',
      // The master keeps the shared id; node1, after it in the lab, gets a new one.
      'machine-id@master:already-done',
      'machine-id@node1:applied',
    ]);
  });

  it('leaves exactly one default route via the management gateway', async () => {
    for (const vm of ['master', 'node1']) {
      expect(await routes(vm)).toEqual([{ via: '10.214.0.1', dev: 'eth0' }]);
    }
  });

  it('routes the service and pod ranges into the private network, not out of the lab', async () => {
    for (const vm of ['master', 'node1']) {
      const table = await sh(vm, 'ip -4 route show');
      expect(table).toContain(`${spec.network.serviceCidr} dev eth1`);
      expect(table).toContain(`${spec.network.podCidr} dev eth1`);
      expect(await sh(vm, 'ip -4 route get 10.254.3.4')).toContain('dev eth1');
    }
  });

  it('the boot-time unit removes a rogue second default route and restores a deleted one', async () => {
    await sh('node1', 'ip -4 route add default via 10.214.0.254 dev eth0 metric 50');
    expect(await routes('node1')).toHaveLength(2);
    await sh('node1', 'systemctl restart klab-default-route.service');
    expect(await routes('node1')).toEqual([{ via: '10.214.0.1', dev: 'eth0' }]);
    await sh('node1', 'ip -4 route del default');
    await sh('node1', 'systemctl restart klab-default-route.service');
    expect(await routes('node1')).toEqual([{ via: '10.214.0.1', dev: 'eth0' }]);
    expect((await sh('node1', 'systemctl is-enabled klab-default-route.service')).trim()).toBe(
      'enabled',
    );
  });

  it('writes /etc/hosts (a bind mount in Docker) with every lab VM and no loopback hostname', async () => {
    const text = await sh('master', 'cat /etc/hosts');
    expect(text).toContain('10.213.0.10\tmaster\n10.213.0.11\tnode1\n');
    expect(text).not.toMatch(/^127\.0\.1\.1/m);
    expect((await sh('node1', 'getent ahostsv4 master')).split(/\s+/)[0]).toBe('10.213.0.10');
  });

  it('gives each VM its own machine-id', async () => {
    const a = (await sh('master', 'cat /etc/machine-id')).trim();
    const b = (await sh('node1', 'cat /etc/machine-id')).trim();
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(a).not.toBe(b);
    // The master kept the id both VMs shared; node1 got one of its own.
    expect(a).toBe('0123456789abcdef0123456789abcdef');
    expect(b).toMatch(/^[0-9a-f]{32}$/);
  });

  it('is idempotent: a second run changes nothing', async () => {
    const outcomes = await runSteps(HOST_PREP_STEPS, context(), emptyState());
    expect(outcomes.every((o) => o.result === 'already-done')).toBe(true);
  });

  it('enforces the route again when the container restarts (systemd boots the unit)', async () => {
    const node = nodes.node1;
    if (!node) throw new Error('no node1');
    await hosts.node1?.close();
    await node.container.restart({ timeout: 10 });
    hosts.node1 = await node.connect();
    let state = '';
    for (let i = 0; i < 30 && state !== 'active'; i += 1) {
      state = (
        await hosts.node1.run(['systemctl', 'is-active', 'klab-default-route.service'], {
          allowFailure: true,
        })
      ).stdout.trim();
      if (state !== 'active') await new Promise((r) => setTimeout(r, 1000));
    }
    expect(state).toBe('active');
    expect(await routes('node1')).toEqual([{ via: '10.214.0.1', dev: 'eth0' }]);
  });

  it('logs what commands print, but never a file read or a quiet command (keys stay out of the run log)', async () => {
    const logged: string[] = [];
    const node = nodes.master;
    if (!node) throw new Error('no master');
    const host = await node.connect((line) => logged.push(line));
    try {
      await host.writeFile('/root/klab-secret.key', 'SECRET-KEY-MATERIAL\n', {
        sudo: true,
        mode: 0o600,
      });
      expect(await host.readFile('/root/klab-secret.key', { sudo: true })).toBe(
        'SECRET-KEY-MATERIAL\n',
      );
      await host.run(['cat', '/root/klab-secret.key'], { sudo: true, quiet: true });
      await host.run(['echo', 'progress-line']);
      expect(logged).toContain('progress-line');
      expect(logged.join('\n')).not.toContain('SECRET-KEY-MATERIAL');
    } finally {
      await host.run(['rm', '-f', '/root/klab-secret.key'], { sudo: true });
      await host.close();
    }
  });
  it('writes files as root in one go: new directories, each mode and owner, content exact, nothing left in /tmp', async () => {
    const host = hosts.master;
    if (!host) throw new Error('no master');
    const binary = Buffer.from([0, 1, 2, 255, 10, 13]);
    await host.writeFilesAsRoot([
      { path: '/etc/klab-batch/a/one.key', content: 'KEY\n', mode: 0o600, owner: 'nobody:nogroup' },
      { path: '/etc/klab-batch/two.conf', content: 'it\'s "quoted" $HOME\n', mode: 0o644 },
      { path: '/etc/klab-batch/a/three.bin', content: binary, mode: 0o640 },
    ]);
    expect(
      (
        await sh(
          'master',
          'cd /etc/klab-batch && stat -c "%n %a %U:%G %s" a/one.key two.conf a/three.bin',
        )
      )
        .trim()
        .split('\n'),
    ).toEqual([
      'a/one.key 600 nobody:nogroup 4',
      'two.conf 644 root:root 20',
      'a/three.bin 640 root:root 6',
    ]);
    expect(await host.readFile('/etc/klab-batch/two.conf', { sudo: true })).toBe(
      'it\'s "quoted" $HOME\n',
    );
    expect((await sh('master', 'ls -a /tmp | grep -c klab-upload || true')).trim()).toBe('0');
    // A failure names the files and leaves no staging directory behind.
    await expect(
      host.writeFilesAsRoot([
        { path: '/etc/klab-batch/bad', content: 'x', mode: 0o644, owner: 'no-such-user:x' },
      ]),
    ).rejects.toMatchObject({ code: 'KLAB_STEP_FAILED' });
    expect((await sh('master', 'ls -a /tmp | grep -c klab-upload || true')).trim()).toBe('0');
    await sh('master', 'rm -rf /etc/klab-batch');
  });
  it('a lost connection (a guest starved for minutes, sshd gone) is dialled again for the next command', async () => {
    const logged: string[] = [];
    const node = nodes.node1;
    if (!node) throw new Error('no node1');
    const host = await node.connect((line) => logged.push(line));
    try {
      expect((await host.run(['echo', 'before'])).stdout.trim()).toBe('before');
      // Every sshd process serving a session of ours dies: the client sees the connection close.
      await node.container.exec(['pkill', '-KILL', '-f', 'sshd: vagrant']);
      await new Promise((r) => setTimeout(r, 1000));
      expect((await host.run(['echo', 'after'])).stdout.trim()).toBe('after');
      await host.writeFile('/tmp/klab-redial', 'over SFTP again\n');
      expect(await host.readFile('/tmp/klab-redial')).toBe('over SFTP again\n');
      expect(logged.join('\n')).toMatch(/the SSH connection to node1 was lost .*connecting again/);
    } finally {
      await host.close();
    }
    // Closed on purpose: no dialling again.
    await expect(host.run(['true'])).rejects.toMatchObject({ code: 'KLAB_SSH_FAILED' });
  });

  it('the connection uses ChaCha20, which a guest without AES instructions decrypts fastest', async () => {
    const node = nodes.node1;
    if (!node) throw new Error('no node1');
    const host = await node.connect();
    try {
      // ssh2 alone would pick AES-GCM here (this host has AES instructions; a TCG guest has not).
      expect(host.cipher).toBe('chacha20-poly1305@openssh.com');
    } finally {
      await host.close();
    }
  });

  it("more commands at once than sshd's MaxSessions all run: the rest wait their turn", async () => {
    const node = nodes.node1;
    if (!node) throw new Error('no node1');
    const host = await node.connect();
    try {
      // SFTP holds a channel too. sshd refuses the 11th channel of one connection.
      expect(await host.readFile('/etc/hostname')).toMatch(/\S/);
      const dir = `/tmp/klab-sessions-${Date.now()}`;
      await host.run(['mkdir', '-p', dir]);
      // Each command marks itself running for a second; the most marks seen at once is
      // how many ran together.
      const script = `touch ${dir}/$1; ls ${dir} | wc -l > ${dir}.$1; sleep 1; rm ${dir}/$1`;
      const results = await Promise.all(
        Array.from({ length: 24 }, (_, i) => host.run(['sh', '-c', script, 'sh', `c${i}`])),
      );
      expect(results.every((result) => result.exitCode === 0)).toBe(true);
      const seen = (await host.run(['sh', '-c', `cat ${dir}.c*`])).stdout
        .split('\n')
        .filter(Boolean)
        .map(Number);
      expect(seen).toHaveLength(24);
      expect(Math.max(...seen)).toBeGreaterThan(1);
      expect(Math.max(...seen)).toBeLessThanOrEqual(MAX_COMMANDS_PER_VM);
    } finally {
      await host.close();
    }
  });
});
