/**
 * Kernel settings Kubernetes needs, persisted so a reboot keeps them: bridge netfilter,
 * IP forwarding, overlay and vxlan modules, no swap, and the legacy iptables backend
 * (Kubernetes 1.11-1.20, Docker and flannel all drive the same iptables this way).
 */
import type { RemoteHost } from '../../src/model/remote.js';
import { probeStep } from '../lib/cluster.js';
import { changedFiles, type ManagedFile, putFiles } from '../lib/guest.js';

/** Kernel modules and sysctls every VM needs, persisted so a reboot keeps them. */
export const KERNEL_MODULES = ['overlay', 'br_netfilter', 'vxlan'];

export const SYSCTLS: Record<string, string> = {
  'net.bridge.bridge-nf-call-iptables': '1',
  'net.bridge.bridge-nf-call-ip6tables': '1',
  'net.ipv4.ip_forward': '1',
  'vm.swappiness': '0',
};

export function renderModulesLoad(): string {
  return `# Managed by klab.\n${KERNEL_MODULES.join('\n')}\n`;
}

export function renderSysctl(): string {
  const lines = Object.entries(SYSCTLS).map(([key, value]) => `${key} = ${value}`);
  return `# Managed by klab.\n${lines.join('\n')}\n`;
}

const FILES: ManagedFile[] = [
  { path: '/etc/modules-load.d/klab.conf', content: renderModulesLoad(), mode: 0o644 },
  { path: '/etc/sysctl.d/90-klab.conf', content: renderSysctl(), mode: 0o644 },
];

const LEGACY = { iptables: '/usr/sbin/iptables-legacy', ip6tables: '/usr/sbin/ip6tables-legacy' };

/** The modules not loaded and the sysctls not set as Kubernetes needs, on a VM. */
export async function modulesAndSysctls(host: RemoteHost): Promise<string[]> {
  const problems: string[] = [];
  const modules = await host.run(['cat', '/proc/modules']);
  const loaded = new Set(modules.stdout.split('\n').map((line) => line.split(' ')[0]));
  for (const module of KERNEL_MODULES) {
    if (!loaded.has(module)) problems.push(`module ${module} not loaded`);
  }
  // /proc/sys directly: sysctl lives in /usr/sbin, off the vagrant user's PATH.
  const keys = Object.keys(SYSCTLS);
  const sysctl = await host.run(
    ['cat', ...keys.map((key) => `/proc/sys/${key.replaceAll('.', '/')}`)],
    { allowFailure: true },
  );
  const values = sysctl.stdout.trim().split('\n');
  keys.forEach((key, index) => {
    const value = values[index]?.trim();
    if (value !== SYSCTLS[key]) problems.push(`${key} is ${value || 'unset'}`);
  });
  return problems;
}

export const kernelStep = probeStep({
  id: 'kernel',
  title: 'Kernel modules, sysctls, no swap, legacy iptables',
  async problems(ctx, vm) {
    const host = ctx.host(vm.name);
    const problems = (await changedFiles(host, FILES)).map((file) => `${file.path} differs`);
    problems.push(...(await modulesAndSysctls(host)));
    const swaps = await host.run(['cat', '/proc/swaps']);
    if (swaps.stdout.trim().split('\n').length > 1) problems.push('swap is on');
    const alt = await host.run(['readlink', '/etc/alternatives/iptables'], {
      allowFailure: true,
    });
    const hasLegacy = await host.run(['test', '-x', LEGACY.iptables], { allowFailure: true });
    if (hasLegacy.exitCode === 0 && alt.stdout.trim() !== LEGACY.iptables) {
      problems.push(`iptables is ${alt.stdout.trim() || 'not an alternative'}`);
    }
    return problems;
  },
  async apply(ctx, vm) {
    const host = ctx.host(vm.name);
    await putFiles(host, FILES);
    await host.run(['modprobe', '-a', ...KERNEL_MODULES], { sudo: true });
    await host.run(['sysctl', '--system'], { sudo: true });
    await host.run(['swapoff', '-a'], { sudo: true });
    // Keep swap off after a reboot too: comment out swap lines in fstab.
    await host.run(
      ['sed', '-i', '-E', 's|^([^#].*\\sswap\\s.*)$|# klab: no swap # \\1|', '/etc/fstab'],
      {
        sudo: true,
      },
    );
    const hasLegacy = await host.run(['test', '-x', LEGACY.iptables], { allowFailure: true });
    if (hasLegacy.exitCode === 0) {
      for (const [name, target] of Object.entries(LEGACY)) {
        await host.run(['update-alternatives', '--set', name, target], { sudo: true });
      }
    }
  },
  hint: (vm) =>
    `Look at the kernel settings on ${vm.name}: klab ssh ${vm.name} -- sudo sysctl --system`,
});
