/**
 * `vagrant ssh-config`, remembered per lab: every klab command opens SSH to the lab's VMs,
 * and asking Vagrant each time costs a Ruby start per VM (1-3 s on a busy host). The answer
 * only changes when a VM boots, stops, goes away or goes back to a snapshot: the first three
 * forget it, a revert brings back the answer saved with the snapshot (if any); a VM that is not running is always asked about afresh (Vagrant then says why
 * it cannot be reached), and so is one whose remembered address no longer answers
 * (`fresh`, from session.ts).
 */
import { readJson, writeJson } from '../model/cache-paths.js';
import type { Machines, SshConfig, Virt } from '../model/ports.js';

type Remembered = Record<string, SshConfig>;
/** Per snapshot, each VM's ssh-config when the snapshot was taken. */
type Saved = Record<string, Remembered>;

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
  // A snapshot holds each guest with the address it had then: kept beside the snapshot, it
  // is what a revert brings back (no Vagrant to ask: a Ruby start per VM, 15-20 s for four
  // on a busy host). A VM whose address was not known at the save is forgotten instead.
  const savedFile = file.replace(/(\.json)?$/, '.snapshots.json');
  const vmOf = async (domain: string) =>
    Object.keys(await remembered()).find((vm) => options.domain(vm) === domain);
  const createSnapshot: Virt['createSnapshot'] = async (domain, name, description) => {
    await virt.createSnapshot(domain, name, description);
    await serially(async () => {
      const vm = await vmOf(domain);
      const config = vm ? (await remembered())[vm] : undefined;
      const saved = (await readJson<Saved>(savedFile).catch(() => undefined)) ?? {};
      const atSave = { ...saved[name] };
      if (vm && config) atSave[vm] = config;
      else
        for (const known of Object.keys(atSave))
          if (options.domain(known) === domain) delete atSave[known];
      await writeJson(savedFile, { ...saved, [name]: atSave });
    }).catch(() => undefined);
  };
  const revertSnapshot: Virt['revertSnapshot'] = async (domain, name) => {
    await serially(async () => {
      const saved = (await readJson<Saved>(savedFile).catch(() => undefined)) ?? {};
      const entry = Object.entries(saved[name] ?? {}).find(([vm]) => options.domain(vm) === domain);
      const current = await remembered();
      for (const vm of Object.keys(current)) if (options.domain(vm) === domain) delete current[vm];
      if (entry) current[entry[0]] = entry[1];
      await writeJson(file, current);
    }).catch(() => forget());
    await virt.revertSnapshot(domain, name);
  };
  const wrapped = new Proxy(virt, {
    get: (target, key, receiver) =>
      key === 'revertSnapshot'
        ? revertSnapshot
        : key === 'createSnapshot'
          ? createSnapshot
          : Reflect.get(target, key, receiver),
  });
  return { machines: cached, virt: wrapped };
}
