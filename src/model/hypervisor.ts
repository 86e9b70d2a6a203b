/**
 * KVM or TCG? /dev/kvm existing is not enough: on nested or PVM-style hosts KVM is there
 * but no ordinary kernel boots. So klab boots a real kernel under KVM for a few seconds
 * and watches the serial console; the verdict is cached per host kernel.
 */

export type Accelerator = 'kvm' | 'tcg';

/** How the Vagrantfile asks libvirt for the VMs' CPUs. */
export interface HypervisorSettings {
  /** libvirt domain type: kvm (hardware) or qemu (TCG software emulation). */
  driver: 'kvm' | 'qemu';
  cpuMode: 'host-model' | 'host-passthrough' | 'custom';
  cpuModel?: string | undefined;
}

export interface ProbeOutcome {
  /** Serial console output of the probe VM. */
  output: string;
  exitCode: number;
  timedOut: boolean;
}

export interface KvmVerdict {
  usable: boolean;
  reason: string;
}

/** The kernel panics on purpose (no root fs): reaching that panic proves it booted. */
export function judgeKvmProbe(outcome: ProbeOutcome): KvmVerdict {
  const out = outcome.output;
  if (/KVM internal error|emulation failure|triple fault/i.test(out)) {
    return { usable: false, reason: 'KVM reported an internal error while booting a test kernel' };
  }
  if (/Kernel panic|Unable to mount root|VFS: Cannot open root/i.test(out)) {
    return { usable: true, reason: 'a test kernel booted under KVM' };
  }
  if (/Could not access KVM|failed to initialize kvm|kvm: .*(denied|not supported)/i.test(out)) {
    return { usable: false, reason: 'QEMU could not open /dev/kvm' };
  }
  if (/Linux version/.test(out)) {
    return { usable: false, reason: 'a test kernel started under KVM but never finished booting' };
  }
  if (outcome.timedOut) {
    return {
      usable: false,
      reason: 'a test kernel printed nothing under KVM (it hangs on this host)',
    };
  }
  return {
    usable: false,
    reason: `QEMU with KVM exited (code ${outcome.exitCode}) before a test kernel booted`,
  };
}

export function hypervisorSettings(accelerator: Accelerator): HypervisorSettings {
  if (accelerator === 'kvm') return { driver: 'kvm', cpuMode: 'host-model' };
  // `-cpu host` is KVM-only, and host-model can abort under TCG; qemu64 always works.
  return { driver: 'qemu', cpuMode: 'custom', cpuModel: 'qemu64' };
}

export interface HypervisorChoice {
  accelerator: Accelerator;
  settings: HypervisorSettings;
  reason: string;
  /** A one-line notice for the user when klab fell back to TCG by itself. */
  notice?: string;
}

export interface ChooseHypervisorInput {
  preference: 'auto' | 'kvm' | 'qemu';
  kvmDevicePresent: boolean;
  /** Runs (or recalls) the KVM boot probe; undefined when no kernel is available to try. */
  probe: () => Promise<KvmVerdict | undefined>;
}

const TCG_NOTE = 'using TCG software emulation (VMs run about 5-8x slower)';

export async function chooseHypervisor(input: ChooseHypervisorInput): Promise<HypervisorChoice> {
  if (input.preference === 'kvm') {
    return {
      accelerator: 'kvm',
      settings: hypervisorSettings('kvm'),
      reason: 'hypervisor: kvm in klab.yaml',
    };
  }
  if (input.preference === 'qemu') {
    return {
      accelerator: 'tcg',
      settings: hypervisorSettings('tcg'),
      reason: 'hypervisor: qemu in klab.yaml',
    };
  }
  if (!input.kvmDevicePresent) {
    const reason = '/dev/kvm is missing or not accessible';
    return {
      accelerator: 'tcg',
      settings: hypervisorSettings('tcg'),
      reason,
      notice: `${reason}: ${TCG_NOTE}`,
    };
  }
  const verdict = await input.probe();
  if (!verdict) {
    const reason = 'no kernel was available to test KVM with';
    return {
      accelerator: 'tcg',
      settings: hypervisorSettings('tcg'),
      reason,
      notice: `${reason}: ${TCG_NOTE}; set "hypervisor: kvm" in klab.yaml to force KVM`,
    };
  }
  if (verdict.usable) {
    return { accelerator: 'kvm', settings: hypervisorSettings('kvm'), reason: verdict.reason };
  }
  return {
    accelerator: 'tcg',
    settings: hypervisorSettings('tcg'),
    reason: verdict.reason,
    notice: `KVM cannot boot guests here (${verdict.reason}): ${TCG_NOTE}`,
  };
}
