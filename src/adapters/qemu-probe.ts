/** Boots a kernel under QEMU+KVM for a few seconds to see whether KVM really works here. */
import { access, constants, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { ProbeOutcome } from '../model/hypervisor.js';
import { runProcess } from './process.js';

export async function kvmDevicePresent(): Promise<boolean> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** A kernel image to boot: the host's own, else one saved next to a locally built box. */
export async function findProbeKernel(extraDirs: readonly string[]): Promise<string | undefined> {
  for (const dir of ['/boot', ...extraDirs]) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    const kernels = names.filter((name) => name.startsWith('vmlinuz')).sort();
    for (const name of kernels.reverse()) {
      const file = path.join(dir, name);
      try {
        await access(file, constants.R_OK);
        return file;
      } catch {
        // unreadable, try the next
      }
    }
  }
  return undefined;
}

export async function runKvmProbe(kernel: string, timeoutMs = 45_000): Promise<ProbeOutcome> {
  const result = await runProcess(
    [
      'qemu-system-x86_64',
      '-accel',
      'kvm',
      '-cpu',
      'host',
      '-m',
      '256',
      '-nographic',
      '-no-reboot',
      '-nodefaults',
      '-serial',
      'stdio',
      '-kernel',
      kernel,
      '-append',
      'console=ttyS0 panic=-1 loglevel=4',
    ],
    { timeoutMs },
  );
  return {
    output: `${result.stdout}\n${result.stderr}`,
    exitCode: result.exitCode,
    timedOut: result.timedOut,
  };
}
