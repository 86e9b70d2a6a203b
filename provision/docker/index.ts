/**
 * Docker on the nodes, started after flanneld with flannel's subnet for docker0, so every
 * pod IP is routable across VMs; the FORWARD policy is put back to ACCEPT after each start.
 * The drop-in: provision/docker/klab.conf.ejs.
 */
import { GUEST } from '../../src/model/guest-paths.js';
import type { InstallProfile } from '../../src/stacks/install.js';
import type { Probe } from '../lib/probes.js';
import { serviceStep } from '../lib/service-step.js';
import { renderTemplate } from '../lib/template.js';

export function renderDockerDropIn(profile: InstallProfile): string {
  const deb = profile.docker.kind === 'deb';
  return renderTemplate('docker', 'klab.conf.ejs', {
    dockerd: deb ? '/usr/sbin/dockerd' : '/usr/bin/dockerd',
    containerd: deb ? ' --containerd=/run/containerd/containerd.sock' : '',
  });
}

export function renderDockerDaemonJson(): string {
  const settings = {
    'exec-opts': ['native.cgroupdriver=cgroupfs'],
    'log-driver': 'json-file',
    'log-opts': { 'max-size': '10m', 'max-file': '3' },
    'storage-driver': 'overlay2',
  };
  return `${JSON.stringify(settings, null, 2)}\n`;
}

/** FLANNEL_SUBNET=172.30.5.1/24 -> 172.30.5.1/24 */
export function flannelSubnet(subnetEnv: string): string | undefined {
  return /^FLANNEL_SUBNET=(\S+)$/m.exec(subnetEnv)?.[1];
}

/** docker0 has the address flannel leased this VM. */
const onFlannelSubnet: Probe = async (ctx, vm) => {
  const host = ctx.host(vm.name);
  const env = await host.run(['cat', '/run/flannel/subnet.env'], { allowFailure: true });
  const subnet = flannelSubnet(env.stdout);
  const addr = await host.run(['ip', '-4', '-o', 'addr', 'show', 'docker0'], {
    allowFailure: true,
  });
  return subnet && addr.stdout.includes(` ${subnet} `)
    ? []
    : [`docker0 is not on flannel's subnet ${subnet ?? '(none)'}`];
};

const forwardAccepts: Probe = async (ctx, vm) => {
  const forward = await ctx
    .host(vm.name)
    .run(['iptables', '-S', 'FORWARD'], { sudo: true, allowFailure: true });
  return forward.stdout.includes('-P FORWARD ACCEPT') ? [] : ['the FORWARD policy is not ACCEPT'];
};

export const dockerStep = serviceStep({
  id: 'docker',
  title: "Docker on the nodes, on flannel's subnet",
  on: 'nodes',
  units: ['docker'],
  files: (ctx) => [
    {
      path: `${GUEST.units}/docker.service.d/klab.conf`,
      content: renderDockerDropIn(ctx.profile),
      mode: 0o644,
    },
    { path: '/etc/docker/daemon.json', content: renderDockerDaemonJson(), mode: 0o644 },
  ],
  probes: [onFlannelSubnet, forwardAccepts],
  // Always a restart: docker0 may still have the address of a start before flannel.
  restart: 'always',
});
