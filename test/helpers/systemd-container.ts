/**
 * Real systemd + sshd containers for the container tier, built without any registry:
 * the root filesystem klab's box builder already made is imported into Docker.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { GenericContainer, type StartedTestContainer, Wait } from 'testcontainers';
import { connectSsh, type SshHost } from '../../src/adapters/ssh.js';
import { boxBuildPaths, LOCAL_BOXES } from '../../src/app/box.js';
import { klab, ok } from './cli.js';

process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';

/** The vagrant insecure key pair: the box and this image trust its public half. */
export async function insecurePrivateKey(): Promise<Buffer> {
  const gems = '/usr/share/rubygems-integration/all/gems';
  const dirs = existsSync(gems) ? (await import('node:fs')).readdirSync(gems) : [];
  const vagrant = dirs.find((dir) => /^vagrant-\d/.test(dir));
  if (!vagrant) throw new Error('the vagrant package (with its insecure key) is not installed');
  return readFile(path.join(gems, vagrant, 'keys', 'vagrant'));
}

/** klab-systemd:<build key>, made once from the cached rootfs of klab/debian-12. */
export async function systemdImage(): Promise<string> {
  const recipe = LOCAL_BOXES[0];
  if (!recipe) throw new Error('no box recipe');
  const paths = await boxBuildPaths(recipe);
  const tag = `klab-systemd:${paths.key}`;
  const present = await execa('docker', ['image', 'inspect', tag], { reject: false });
  if (present.exitCode === 0) return tag;
  if (!existsSync(paths.rootfsTar)) ok(await klab(['box', 'build'], os.tmpdir()));
  const base = `klab-rootfs:${paths.key}`;
  await execa('docker', ['import', paths.rootfsTar, base]);
  const context = await mkdtemp(path.join(os.tmpdir(), 'klab-image-'));
  // No DHCP in a container (Docker configures eth0), and no consoles to log in on.
  await writeFile(
    path.join(context, 'Dockerfile'),
    `FROM ${base}
RUN systemctl mask networking.service getty@tty1.service serial-getty@ttyS0.service console-getty.service systemd-timesyncd.service
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
`,
  );
  await execa('docker', ['build', '-q', '-t', tag, context]);
  return tag;
}

/** GenericContainer plus the two settings a systemd container needs that it has no method for. */
class SystemdContainer extends GenericContainer {
  constructor(image: string) {
    super(image);
    this.hostConfig.DeviceCgroupRules = ['a *:* rwm'];
    // Docker API field the client typings do not know yet.
    (this.hostConfig as typeof this.hostConfig & { CgroupnsMode?: string }).CgroupnsMode = 'host';
  }
}

export interface TestNetwork {
  name: string;
  subnet: string;
  gateway: string;
  remove(): Promise<void>;
}

export async function createNetwork(
  name: string,
  subnet: string,
  gateway: string,
): Promise<TestNetwork> {
  await execa('docker', ['network', 'rm', name], { reject: false });
  await execa('docker', ['network', 'create', '--subnet', subnet, '--gateway', gateway, name]);
  return {
    name,
    subnet,
    gateway,
    remove: async () => {
      await execa('docker', ['network', 'rm', name], { reject: false });
    },
  };
}

/** Attaches a running container to a second network (it becomes eth1, like a lab VM's). */
export async function attachNetwork(
  container: StartedTestContainer,
  network: TestNetwork,
  ip: string,
): Promise<void> {
  await execa('docker', ['network', 'connect', '--ip', ip, network.name, container.getId()]);
}

export interface SystemdNode {
  container: StartedTestContainer;
  ip: string;
  /** onLine: every output line of a command, as the run log receives them. */
  connect(onLine?: (line: string) => void): Promise<SshHost>;
}

export async function startSystemdNode(
  image: string,
  hostname: string,
  network: TestNetwork,
): Promise<SystemdNode> {
  const container = await new SystemdContainer(image)
    .withHostname(hostname)
    .withNetworkMode(network.name)
    .withAddedCapabilities('ALL')
    .withDroppedCapabilities('SYS_RESOURCE')
    .withSecurityOpt('seccomp=unconfined', 'apparmor=unconfined')
    .withTmpFs({ '/run': 'rw', '/tmp': 'rw,exec' })
    .withBindMounts([{ source: '/sys/fs/cgroup', target: '/sys/fs/cgroup', mode: 'rw' }])
    .withWaitStrategy(Wait.forSuccessfulCommand('systemctl is-active ssh.service'))
    .withStartupTimeout(120_000)
    .start();
  const ip = container.getIpAddress(network.name);
  const privateKey = await insecurePrivateKey();
  return {
    container,
    ip,
    connect: (onLine) =>
      connectSsh(
        { name: hostname, host: ip, port: 22, user: 'vagrant', privateKey },
        { timeoutMs: 90_000, onLine },
      ),
  };
}
