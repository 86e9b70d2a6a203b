import { execa } from 'execa';

async function virsh(args: string[]): Promise<string> {
  const result = await execa('virsh', ['-c', 'qemu:///system', ...args], { reject: false });
  return String(result.stdout);
}

function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/** Everything libvirt holds whose name starts with prefix: domains, networks, volumes. */
export async function libvirtObjects(prefix: string): Promise<string[]> {
  const domains = lines(await virsh(['list', '--all', '--name'])).filter((n) =>
    n.startsWith(prefix),
  );
  const networks = lines(await virsh(['net-list', '--all', '--name'])).filter((n) =>
    n.startsWith(prefix),
  );
  const volumes = lines(await virsh(['vol-list', 'default']))
    .slice(2)
    .map((l) => l.split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(prefix));
  return [
    ...domains.map((d) => `domain ${d}`),
    ...networks.map((n) => `network ${n}`),
    ...volumes.map((v) => `volume ${v}`),
  ];
}

/** Remove what an earlier, interrupted test run left behind (names start with prefix). */
export async function removeLeftovers(prefix: string): Promise<void> {
  for (const domain of lines(await virsh(['list', '--all', '--name'])).filter((n) =>
    n.startsWith(prefix),
  )) {
    for (const snap of lines(await virsh(['snapshot-list', domain, '--name']))) {
      await virsh(['snapshot-delete', domain, snap]);
    }
    await virsh(['destroy', domain]);
    await virsh(['undefine', domain, '--remove-all-storage']);
  }
  for (const network of lines(await virsh(['net-list', '--all', '--name'])).filter((n) =>
    n.startsWith(prefix),
  )) {
    await virsh(['net-destroy', network]);
    await virsh(['net-undefine', network]);
  }
  for (const line of lines(await virsh(['vol-list', 'default'])).slice(2)) {
    const name = line.split(/\s+/)[0] ?? '';
    if (name.startsWith(prefix)) await virsh(['vol-delete', '--pool', 'default', name]);
  }
}
