/** Decide KVM or TCG for this host, probing once and caching the verdict. */
import os from 'node:os';
import { findProbeKernel, kvmDevicePresent, runKvmProbe } from '../adapters/qemu-probe.js';
import { cachePath, readJson, writeJson } from '../model/cache-paths.js';
import { type EventSink, task } from '../model/events.js';
import {
  chooseHypervisor,
  type HypervisorChoice,
  judgeKvmProbe,
  type KvmVerdict,
} from '../model/hypervisor.js';
import type { LabSpec } from '../model/spec.js';

interface CachedVerdict {
  hostKernel: string;
  verdict: KvmVerdict;
}

export async function detectHypervisor(
  preference: LabSpec['hypervisor'],
  sink: EventSink,
  kernelDirs: readonly string[] = [],
): Promise<HypervisorChoice> {
  const cacheFile = cachePath('hypervisor.json');
  const forced = process.env.KLAB_HYPERVISOR;
  const pref = forced === 'kvm' || forced === 'qemu' ? forced : preference;
  return chooseHypervisor({
    preference: pref,
    kvmDevicePresent: await kvmDevicePresent(),
    probe: async () => {
      const cached = await readJson<CachedVerdict>(cacheFile);
      if (cached && cached.hostKernel === os.release()) return cached.verdict;
      const kernel = await findProbeKernel(kernelDirs);
      if (!kernel) return undefined;
      const verdict = await task(
        sink,
        'Test whether KVM can boot a guest on this host',
        async () => {
          return judgeKvmProbe(await runKvmProbe(kernel));
        },
        (v) => (v.usable ? 'KVM works' : 'KVM unusable'),
      );
      await writeJson(cacheFile, { hostKernel: os.release(), verdict } satisfies CachedVerdict);
      return verdict;
    },
  });
}
