/**
 * Real VMs through Vagrant + libvirt (TCG on hosts where KVM cannot boot guests).
 * One 2-VM lab (master + node1, a whole Kubernetes cluster) is shared by every test in
 * this file, in order: CI has 90 minutes.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { klab, ok } from '../helpers/cli.js';
import { libvirtObjects, removeLeftovers } from '../helpers/libvirt.js';

const LAB = 'e2e';
const PREFIX = `klab-${LAB}`;
const DIR = `/var/tmp/klab-e2e-lab`;
const MASTER_IP = '192.168.213.10';
const NODE1_IP = '192.168.213.11';
const MGMT_GW = '192.168.214.1';

const SPEC = `name: ${LAB}
box: klab/debian-12
stack: debian
network:
  subnet: 192.168.213.0/24
  managementSubnet: 192.168.214.0/24
nodes:
  - name: master
    role: master
    memory: 1536
  - name: node1
    memory: 1536
`;

const CLI = new URL('../../dist/src/cli.js', import.meta.url).pathname;

async function bootId(vm: string): Promise<string> {
  return ok(
    await klab(['ssh', vm, '--', 'cat', '/proc/sys/kernel/random/boot_id'], DIR),
  ).stdout.trim();
}

/** Polls until the VM answers over SSH with another boot id (it really rebooted). */
async function waitForNewBoot(vm: string, before: string): Promise<void> {
  const deadline = Date.now() + 600_000;
  while (Date.now() < deadline) {
    const now = await klab(
      ['ssh', vm, '--', 'cat', '/proc/sys/kernel/random/boot_id'],
      DIR,
      60_000,
    );
    if (now.exitCode === 0 && now.stdout.trim() && now.stdout.trim() !== before) return;
    await new Promise((resolve) => setTimeout(resolve, 5000));
  }
  throw new Error(`${vm} did not come back from its reboot within 600 s`);
}

/** Polls libvirt until every VM's domain is in the state. */
async function waitForState(vms: string[], state: string): Promise<void> {
  const { execa } = await import('execa');
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    const states = await Promise.all(
      vms.map(async (vm) => {
        const result = await execa(
          'virsh',
          ['-c', 'qemu:///system', 'domstate', `${PREFIX}_${vm}`],
          {
            reject: false,
          },
        );
        return String(result.stdout).trim();
      }),
    );
    if (states.every((entry) => entry === state)) return;
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
  throw new Error(`${vms.join(', ')} did not reach "${state}" within 300 s`);
}

async function defaultRoutes(vm: string): Promise<string[]> {
  const result = ok(await klab(['ssh', vm, '--', 'ip', '-4', 'route', 'show', 'default'], DIR));
  return result.stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('default'));
}

describe('a 2-VM lab on real VMs', () => {
  beforeAll(async () => {
    await removeLeftovers(PREFIX);
    await rm(DIR, { recursive: true, force: true });
    await mkdir(DIR, { recursive: true });
    await writeFile(`${DIR}/klab.yaml`, SPEC);
  });

  afterAll(async () => {
    // Whatever happened, leave no VM running behind.
    await klab(['destroy', '--yes'], DIR);
    await removeLeftovers(PREFIX);
  });

  it('klab doctor finds the host ready', async () => {
    const result = await klab(['doctor'], DIR);
    expect(result.stdout).toContain('The host is ready for klab.');
    expect(result.exitCode).toBe(0);
  });

  it('klab create, killed with SIGKILL in the middle of a step, is finished by the next klab create', async () => {
    // The first run: killed the moment the etcd step starts (host prep, binaries and
    // certificates are done by then), as a crash or a closed terminal would.
    const { execa } = await import('execa');
    const first = execa('node', [CLI, '--dir', DIR, 'create'], {
      reject: false,
      env: { CI: 'true' },
      stdin: 'ignore',
    });
    let firstErr = '';
    const killed = new Promise<void>((resolve) => {
      first.stderr?.on('data', (chunk: Buffer) => {
        firstErr += chunk.toString();
        if (/^ - etcd cluster/m.test(firstErr)) {
          first.kill('SIGKILL');
          resolve();
        }
      });
      void first.then(() => resolve());
    });
    await killed;
    const firstResult = await first;
    expect(firstResult.signal, firstErr).toBe('SIGKILL');
    expect(firstErr).toMatch(/ok Default route .*2\/2 VMs changed/);
    expect(firstErr).toMatch(/ok \/etc\/hosts entries/);
    expect(firstErr).toMatch(/ok Generate the lab PKI .*issued/);

    // The second run takes over the dead run's lock, skips what is done, and finishes.
    const result = ok(await klab(['create'], DIR));
    expect(result.stderr).toContain("Took over the lab's lock");
    expect(result.stderr).toMatch(/ok Default route .*already done/);
    expect(result.stderr).toMatch(/ok Install the stack.*already done/);
    expect(result.stderr).toMatch(/ok Copy certificates.*already done/);
    expect(result.stderr).toMatch(/ok etcd cluster .*(1\/1 VMs changed|already done)/);
    expect(result.stdout).toContain(
      `Lab "${LAB}" is ready: master ${MASTER_IP}, node1 ${NODE1_IP}`,
    );
    expect(result.stderr).toMatch(/ok kubelet on the nodes, joined by TLS bootstrap; nodes Ready/);
    // create ends with the cluster checks of klab verify.
    expect(result.stderr).toMatch(
      /ok test app through the ingress on every node IP, from the host/,
    );
    expect(ok(await klab(['certs', 'check'], DIR)).stdout).toMatch(/are fine\.$/m);
  });

  it('kubectl works for the learner on the master; node1 joined through a CSR', async () => {
    const nodes = ok(await klab(['ssh', 'master', '--', 'kubectl', 'get', 'nodes'], DIR));
    expect(nodes.stdout).toMatch(/^node1\s+Ready\s/m);
    const csr = ok(await klab(['ssh', 'master', '--', 'kubectl', 'get', 'csr'], DIR));
    expect(csr.stdout).toMatch(/system:bootstrap:[a-z0-9]{6}\s+Approved,Issued/);
    // The CA key stays on the master.
    const caKey = await klab(
      ['ssh', 'node1', '--', 'sudo', 'test', '-e', '/etc/kubernetes/pki/ca.key'],
      DIR,
    );
    expect(caKey.exitCode).toBe(1);
  });

  it('klab verify: the PHP test app answers by pod IP, ClusterIP and ingress', async () => {
    const result = ok(await klab(['verify'], DIR));
    expect(result.stdout).toMatch(/All \d+ cluster checks passed/);
    expect(result.stderr).toMatch(/ok Secrets are encrypted at rest in etcd/);
    expect(result.stderr).toMatch(/ok test app by ClusterIP from every VM/);
    // And from the host, as a learner would try it.
    const { httpGet } = await import('../../src/adapters/http.js');
    const page = await httpGet(`http://${NODE1_IP}/`, { Host: 'php-apache.klab.test' });
    expect(page.status).toBe(200);
    expect(page.body.toString()).toMatch(/served by: php-apache-/);
  });

  it('verify waits, by name and bounded, for Endpoints that come late, and fails naming the wait when they never come', async () => {
    const master = (...argv: string[]) => klab(['ssh', 'master', '--', ...argv], DIR);
    const deleteEndpoints = () =>
      master('kubectl', '-n', 'klab-verify', 'delete', 'endpoints', 'php-apache');
    // The endpoints controller lives in kube-controller-manager. Frozen (SIGSTOP), it is a
    // slow controller, not a stopped one: the unit stays active and nobody rebuilds them.
    ok(await master('sudo', 'systemctl', 'kill', '-s', 'STOP', 'kube-controller-manager'));
    ok(await deleteEndpoints());
    await writeFile(`${DIR}/klab.yaml`, `${SPEC}timeouts:\n  check: 30\n`);
    const never = await klab(['verify'], DIR);
    expect(never.exitCode).toBe(4);
    expect(never.stderr).toContain(
      'Endpoints of klab-verify/php-apache: 1 ready address(es): not reached within 30 s',
    );
    await writeFile(`${DIR}/klab.yaml`, SPEC);

    // Now they come back 40 s into the run: verify waits for them and passes.
    const late = klab(['verify'], DIR);
    await new Promise((resolve) => setTimeout(resolve, 40_000));
    ok(await master('sudo', 'systemctl', 'kill', '-s', 'CONT', 'kube-controller-manager'));
    const result = ok(await late);
    expect(result.stdout).toMatch(/All \d+ cluster checks passed/);
    expect(result.stderr).toMatch(
      /ok scheduler, controller manager and etcd report healthy .*waited \d+ s/,
    );
    console.log(
      `verify with late Endpoints:\n${result.stderr
        .split('\n')
        .filter((l) => l.startsWith('ok '))
        .join('\n')}`,
    );
  });

  it('the VMs reach each other on the private network, by name too', async () => {
    ok(await klab(['ssh', 'master', '--', 'ping', '-c', '2', '-W', '5', NODE1_IP], DIR));
    ok(await klab(['ssh', 'node1', '--', 'ping', '-c', '2', '-W', '5', MASTER_IP], DIR));
    const byName = ok(await klab(['ssh', 'node1', '--', 'getent', 'ahostsv4', 'master'], DIR));
    expect(byName.stdout.split(/\s+/)[0]).toBe(MASTER_IP);
  });

  it('each VM has exactly one default route, via the management gateway; lab ranges stay inside', async () => {
    for (const vm of ['master', 'node1']) {
      expect(await defaultRoutes(vm)).toEqual([`default via ${MGMT_GW} dev eth0`]);
      // A ClusterIP nobody programmed goes to the isolated private network, not out via NAT.
      const route = ok(
        await klab(['ssh', vm, '--', 'ip', '-4', 'route', 'get', '10.254.250.250'], DIR),
      );
      expect(route.stdout).toContain('dev eth1');
    }
  });

  it('klab ssh node1 -- hostname prints node1, and exit codes pass through', async () => {
    expect(ok(await klab(['ssh', 'node1', '--', 'hostname'], DIR)).stdout.trim()).toBe('node1');
    expect((await klab(['ssh', 'node1', '--', 'sh', '-c', 'exit 7'], DIR)).exitCode).toBe(7);
    const unknown = await klab(['ssh', 'node9', '--', 'true'], DIR);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('error[KLAB_VM_UNKNOWN]');
  });

  it('the VMs have distinct machine-ids', async () => {
    const ids = await Promise.all(
      ['master', 'node1'].map(async (vm) =>
        ok(await klab(['ssh', vm, '--', 'cat', '/etc/machine-id'], DIR)).stdout.trim(),
      ),
    );
    expect(ids[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(ids[0]).not.toBe(ids[1]);
  });

  it('re-running klab create resumes: nothing is rebuilt or re-applied', async () => {
    const result = ok(await klab(['create'], DIR));
    expect(result.stderr).toMatch(/ok Default route .*already done/);
    expect(result.stderr).toMatch(/ok \/etc\/hosts entries .*already done/);
    expect(result.stderr).toMatch(/ok Install the stack.*already done/);
    expect(result.stderr).toMatch(/ok kubelet on the nodes.*already done/);
    expect(result.stderr).not.toMatch(/Snapshot "after-/);
    expect(result.stderr).not.toMatch(/Build box klab\/debian-12 from/);
    // Every stack artifact comes from the cache; nothing is rebuilt.
    expect(result.stderr).toMatch(/ok debian stack: kubernetes .*cached\)/);
    expect(result.stderr).not.toMatch(/ok debian stack: .*built\)/);
  });

  it('took an automatic checkpoint after every provisioning step, on every VM', async () => {
    const list = ok(await klab(['snapshot', 'list'], DIR)).stdout;
    for (const step of [
      'default-route',
      'hosts-file',
      'machine-id',
      'etcd',
      'flannel',
      'control-plane',
      'kubelet',
    ]) {
      expect(list).toMatch(new RegExp(`after-${step}\\s+${step}\\s+\\S+\\s+.+\\s+all`));
    }
  });

  it('snapshot save + reset brings every marker back, with correct clocks', async () => {
    const setMarker = (vm: string, text: string) =>
      klab(['ssh', vm, '--', 'sh', '-c', `echo ${text} > /home/vagrant/marker`], DIR);
    for (const vm of ['master', 'node1']) ok(await setMarker(vm, `before-${vm}`));
    const save = ok(await klab(['snapshot', 'save', 'base'], DIR));
    expect(save.stdout).toContain('Saved "base"');
    for (const vm of ['master', 'node1']) ok(await setMarker(vm, 'changed'));
    // Let time pass, so a guest clock left at the snapshot's moment would be visibly wrong.
    await new Promise((resolve) => setTimeout(resolve, 20_000));
    const reset = ok(await klab(['reset', 'base'], DIR));
    expect(reset.stdout).toMatch(/Reset to "base" in [\d.]+ s\./);
    expect(reset.stderr).toMatch(/ok Step every guest clock/);
    for (const vm of ['master', 'node1']) {
      expect(
        ok(await klab(['ssh', vm, '--', 'cat', '/home/vagrant/marker'], DIR)).stdout.trim(),
      ).toBe(`before-${vm}`);
      const guest = Number(ok(await klab(['ssh', vm, '--', 'date', '+%s'], DIR)).stdout.trim());
      expect(Math.abs(guest - Date.now() / 1000)).toBeLessThan(10);
    }
  });

  it('reset to the checkpoint after provisioning gives back a cluster that passes klab verify', async () => {
    // Break it: the API server gone, the test app's pods killed, kubelet stopped.
    ok(
      await klab(
        ['ssh', 'master', '--', 'sudo', 'systemctl', 'disable', '--now', 'kube-apiserver'],
        DIR,
      ),
    );
    ok(await klab(['ssh', 'node1', '--', 'sudo', 'systemctl', 'stop', 'kubelet'], DIR));
    ok(
      await klab(['ssh', 'node1', '--', 'sudo', 'sh', '-c', 'docker rm -f $(docker ps -aq)'], DIR),
    );
    // Broken, not slow: verify says so at once instead of waiting out timeouts.check.
    const started = Date.now();
    const broken = await klab(['verify'], DIR);
    expect(broken.exitCode).toBe(4);
    expect(broken.stderr).toContain(
      'broken, not slow: kube-apiserver on master is stopped and will not come back by itself',
    );
    expect(Date.now() - started).toBeLessThan(120_000);
    const reset = ok(await klab(['reset', 'after-kubelet'], DIR));
    expect(reset.stdout).toMatch(/Reset to "after-kubelet" in [\d.]+ s\./);
    expect(reset.stderr).toMatch(/ok Wait until the lab is healthy again/);
    const verify = ok(await klab(['verify'], DIR));
    expect(verify.stdout).toMatch(/All \d+ cluster checks passed/);
    const status = ok(await klab(['status'], DIR));
    expect(status.stdout).toMatch(/node1\s+running\s+\S+\s+via .* \(ok\)\s+(\d+)\/\1/);
  });

  it('reset without a name goes to the newest snapshot', async () => {
    const newest = ok(await klab(['reset'], DIR));
    expect(newest.stdout).toMatch(/Reset to "base"/);
  });

  it('refuses to reset to a snapshot that only some VMs have, and deletes snapshots', async () => {
    const { execa } = await import('execa');
    await execa('virsh', [
      '-c',
      'qemu:///system',
      'snapshot-create-as',
      `${PREFIX}_master`,
      'partial',
    ]);
    const refused = await klab(['reset', 'partial'], DIR);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain('error[KLAB_SNAPSHOT_MISSING]');
    expect(refused.stderr).toContain('not on node1');
    ok(await klab(['snapshot', 'delete', 'partial'], DIR));
    ok(await klab(['snapshot', 'delete', 'base'], DIR));
    const list = ok(await klab(['snapshot', 'list'], DIR)).stdout;
    expect(list).not.toMatch(/^(partial|base)\s/m);
  });

  it('keeps exactly one default route after klab halt + klab up, even against a rogue one', async () => {
    // A second default route that the network scripts add at every boot (an if-up.d
    // hook): the klab unit runs after networking and must remove it again.
    const hook =
      '#!/bin/sh\n[ "$IFACE" = eth1 ] && ip route add default via 192.168.213.1 dev eth1 metric 50\nexit 0\n';
    ok(
      await klab(
        [
          'ssh',
          'node1',
          '--',
          'sudo',
          'sh',
          '-c',
          `printf '${hook}' > /etc/network/if-up.d/zz-rogue && chmod 755 /etc/network/if-up.d/zz-rogue`,
        ],
        DIR,
      ),
    );
    ok(await klab(['halt'], DIR));
    const status = ok(await klab(['status'], DIR));
    expect(status.stdout).toMatch(/master\s+shutoff/);
    const up = ok(await klab(['up'], DIR));
    expect(up.stderr).not.toContain('Not as provisioned');
    // The tutorial's "apiserver sometimes does not come back after a reboot": it does.
    expect(ok(await klab(['verify'], DIR)).stdout).toMatch(/All \d+ cluster checks passed/);
    for (const vm of ['master', 'node1']) {
      expect(await defaultRoutes(vm)).toEqual([`default via ${MGMT_GW} dev eth0`]);
    }
    const after = ok(await klab(['status'], DIR));
    expect(after.stdout).toMatch(
      new RegExp(
        `node1\\s+running\\s+${NODE1_IP.replaceAll('.', '\\.')}\\s+via ${MGMT_GW.replaceAll('.', '\\.')} dev eth0 \\(ok\\)\\s+(\\d+)/\\1`,
      ),
    );
  });

  it('comes back by itself when rebooted nodes first, and when all reboot at once while one VM is killed', async () => {
    // (klab halt + klab up above is the master-first order: up boots the master first.)
    // Nodes first: both down, node1 boots alone while the master (etcd, the apiserver)
    // is still off, then the master follows.
    const nodesFirst = Date.now();
    const { execa: run } = await import('execa');
    const nodeBoot = await bootId('node1');
    for (const vm of ['node1', 'master']) {
      await klab(['ssh', vm, '--', 'sudo', 'systemctl', 'poweroff'], DIR, 120_000);
    }
    await waitForState(['master', 'node1'], 'shut off');
    await run('virsh', ['-c', 'qemu:///system', 'start', `${PREFIX}_node1`]);
    await waitForNewBoot('node1', nodeBoot);
    ok(await klab(['up'], DIR));
    expect(ok(await klab(['verify'], DIR)).stdout).toMatch(/All \d+ cluster checks passed/);
    console.log(
      `reboot nodes first -> verified: ${Math.round((Date.now() - nodesFirst) / 1000)} s`,
    );

    const allAtOnce = Date.now();
    const { execa } = await import('execa');
    const masterBoot = await bootId('master');
    await klab(['ssh', 'master', '--', 'sudo', 'systemctl', 'reboot'], DIR, 120_000);
    // node1 crashes outright: no shutdown, as a power cut would do it.
    await execa('virsh', ['-c', 'qemu:///system', 'destroy', `${PREFIX}_node1`]);
    await waitForNewBoot('master', masterBoot);
    const up = ok(await klab(['up'], DIR));
    expect(up.stderr).not.toContain('Not as provisioned');
    expect(ok(await klab(['verify'], DIR)).stdout).toMatch(/All \d+ cluster checks passed/);
    console.log(
      `reboot all at once, node1 killed -> verified: ${Math.round((Date.now() - allAtOnce) / 1000)} s`,
    );
  });

  it('klab destroy --yes leaves no domain, volume or network behind', async () => {
    expect((await libvirtObjects(PREFIX)).length).toBeGreaterThan(0);
    ok(await klab(['destroy', '--yes'], DIR));
    expect(await libvirtObjects(PREFIX)).toEqual([]);
    const status = ok(await klab(['status'], DIR));
    expect(status.stdout).toMatch(/master\s+not_created/);
  });
});
