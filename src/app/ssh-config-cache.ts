/**
 * `vagrant ssh-config`, remembered per lab: every klab command opens SSH to the lab's VMs,
 * and asking Vagrant each time costs a Ruby start per VM (1-3 s on a busy host). The answer
 * only changes when a VM boots, stops, goes away or goes back to a snapshot, so those
 * forget it; a VM that is not running is always asked about afresh (Vagrant then says why
 * it cannot be reached), and so is one whose remembered address no longer answers
 * (`fresh`, from session.ts).
 */
import { readJson, writeJson } from '../model/cache-paths.js';
import type { Machines, SshConfig, Virt } from '../model/ports.js';

type Remembered = Record<string, SshConfig>;

export interface SshConfigCacheOptions {
  file: string;
  /** The libvirt domain of a VM (its state says whether the VM runs). */
  domain(vm: string): string;
}

/** Machines with ssh-config remembered in `file`; Virt's snapshot reverts forget it. */
export function rememberSshConfig(
  machines: Machines,
  virt: Virt,
  options: SshConfigCacheOptions,
): { machines: Machines; virt: Virt } {
  const { file } = options;
  // Every VM is asked for at once (session.ts): the file's updates go one after another.
  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => undefined);
    return next;
  };
  // Remembering is only a shortcut: a file that cannot be written never fails a command
  // (a stale address is asked for again when it does not answer, session.ts).
  const forget = () => serially(() => writeJson(file, {})).catch(() => undefined);
  const remembered = async () => (await readJson<Remembered>(file).catch(() => undefined)) ?? {};
  const cached: Machines = {
    status: () => machines.status(),
    async sshConfig(vm, request) {
      if (!request?.fresh && (await virt.domainState(options.domain(vm))) === 'running') {
        const known = (await remembered())[vm];
        if (known) return known;
      }
      const config = await machines.sshConfig(vm, request);
      await serially(async () => writeJson(file, { ...(await remembered()), [vm]: config })).catch(
        () => undefined,
      );
      return config;
    },
    async up(vms, parallel, timeoutMs) {
      await forget();
      try {
        await machines.up(vms, parallel, timeoutMs);
      } finally {
        await forget();
      }
    },
    async halt(vms) {
      await forget();
      await machines.halt(vms);
    },
    async destroy(vms) {
      await forget();
      await machines.destroy(vms);
    },
    boxList: () => machines.boxList(),
    boxAdd: (name, source, timeoutMs) => machines.boxAdd(name, source, timeoutMs),
  };
  const revertSnapshot: Virt['revertSnapshot'] = async (domain, name) => {
    await forget();
    await virt.revertSnapshot(domain, name);
  };
  const wrapped = new Proxy(virt, {
    get: (target, key, receiver) =>
      key === 'revertSnapshot' ? revertSnapshot : Reflect.get(target, key, receiver),
  });
  return { machines: cached, virt: wrapped };
}
