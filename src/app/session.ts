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

/** How long the first try (with what Vagrant said last time) may take before asking again. */
const REMEMBERED_TRY_MS = 30_000;

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
        const onLine = (line: string) =>
          sink.emit({ kind: 'output', code: 'OUTPUT', source: vm, line });
        const config = await vagrant.sshConfig(vm);
        try {
          // A remembered address that no longer answers is asked for again below.
          return await connectSsh(await targetFromSshConfig(vm, config), {
            timeoutMs: Math.min(timeoutMs, REMEMBERED_TRY_MS),
            onLine,
          });
        } catch {
          const fresh = await vagrant.sshConfig(vm, { fresh: true });
          return connectSsh(await targetFromSshConfig(vm, fresh), { timeoutMs, onLine });
        }
      }),
    );
    for (const host of hosts) pool.add(host);
    return pool;
  } catch (error) {
    await pool.closeAll();
    throw error;
  }
}
