/** Open one SSH connection per running lab VM, from Vagrant's own ssh-config. */
import { connectSsh, targetFromSshConfig } from '../adapters/ssh.js';
import { KlabError } from '../model/errors.js';
import type { EventSink } from '../model/events.js';
import type { Machines } from '../model/ports.js';
import type { RemoteHost } from '../model/remote.js';

export class HostPool {
  private readonly hosts = new Map<string, RemoteHost>();

  get(vm: string): RemoteHost {
    const host = this.hosts.get(vm);
    if (!host) throw new KlabError('KLAB_INTERNAL', `no SSH connection open to ${vm}`);
    return host;
  }

  add(host: RemoteHost): void {
    this.hosts.set(host.name, host);
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.hosts.values()].map((host) => host.close()));
    this.hosts.clear();
  }
}

export async function connectAll(
  vagrant: Machines,
  vms: readonly string[],
  sink: EventSink,
  timeoutMs: number,
): Promise<HostPool> {
  const pool = new HostPool();
  try {
    const hosts = await Promise.all(
      vms.map(async (vm) => {
        const config = await vagrant.sshConfig(vm);
        const target = await targetFromSshConfig(vm, config);
        return connectSsh(target, {
          timeoutMs,
          onLine: (line) => sink.emit({ kind: 'output', code: 'OUTPUT', source: vm, line }),
        });
      }),
    );
    for (const host of hosts) pool.add(host);
    return pool;
  } catch (error) {
    await pool.closeAll();
    throw error;
  }
}
