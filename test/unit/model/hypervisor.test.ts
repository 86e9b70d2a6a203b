import { describe, expect, it } from 'vitest';
import { chooseHypervisor, judgeKvmProbe } from '../../../src/model/hypervisor.js';

// Serial output captured on real hosts: a working KVM reaches the deliberate panic;
// this project's CI host (a PVM-style nested hypervisor) prints nothing after the BIOS.
const BOOTED = `[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)
[    1.334709] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)`;
const HANG =
  'SeaBIOS (version 1.16.2-debian-1.16.2-1)\nBooting from ROM...\nProbing EDD (edd=off to disable)... ok';

describe('judgeKvmProbe', () => {
  it('accepts KVM when the test kernel reaches its root-mount panic', () => {
    expect(judgeKvmProbe({ output: BOOTED, exitCode: 0, timedOut: false }).usable).toBe(true);
  });
  it('rejects KVM when the kernel prints nothing before the timeout', () => {
    const verdict = judgeKvmProbe({ output: HANG, exitCode: 124, timedOut: true });
    expect(verdict).toEqual({
      usable: false,
      reason: 'a test kernel printed nothing under KVM (it hangs on this host)',
    });
  });
  it('rejects KVM on internal errors and triple faults', () => {
    const out = 'KVM internal error. Suberror: 1\nemulation failure';
    expect(judgeKvmProbe({ output: out, exitCode: 1, timedOut: false }).usable).toBe(false);
  });
  it('rejects KVM when QEMU cannot open it', () => {
    const out =
      'Could not access KVM kernel module: Permission denied\nqemu-system-x86_64: failed to initialize kvm';
    expect(judgeKvmProbe({ output: out, exitCode: 1, timedOut: false }).reason).toBe(
      'QEMU could not open /dev/kvm',
    );
  });
});

describe('chooseHypervisor', () => {
  const never = async () => {
    throw new Error('probe must not run');
  };

  it('honours an explicit choice without probing', async () => {
    expect(
      (await chooseHypervisor({ preference: 'qemu', kvmDevicePresent: true, probe: never }))
        .settings.driver,
    ).toBe('qemu');
    expect(
      (await chooseHypervisor({ preference: 'kvm', kvmDevicePresent: false, probe: never }))
        .settings.driver,
    ).toBe('kvm');
  });

  it('falls back to TCG with a notice when /dev/kvm is missing', async () => {
    const choice = await chooseHypervisor({
      preference: 'auto',
      kvmDevicePresent: false,
      probe: never,
    });
    expect(choice.accelerator).toBe('tcg');
    expect(choice.settings).toEqual({ driver: 'qemu', cpuMode: 'custom', cpuModel: 'qemu64' });
    expect(choice.notice).toMatch(/TCG software emulation/);
  });

  it('uses KVM (host-model, no notice) when the probe boots', async () => {
    const choice = await chooseHypervisor({
      preference: 'auto',
      kvmDevicePresent: true,
      probe: async () => ({ usable: true, reason: 'booted' }),
    });
    expect(choice).toMatchObject({
      accelerator: 'kvm',
      settings: { driver: 'kvm', cpuMode: 'host-model' },
    });
    expect(choice.notice).toBeUndefined();
  });

  it('falls back to TCG when /dev/kvm exists but cannot boot a guest', async () => {
    const choice = await chooseHypervisor({
      preference: 'auto',
      kvmDevicePresent: true,
      probe: async () => judgeKvmProbe({ output: HANG, exitCode: 124, timedOut: true }),
    });
    expect(choice.accelerator).toBe('tcg');
    expect(choice.notice).toMatch(/^KVM cannot boot guests here/);
  });

  it('falls back to TCG when no kernel is available to probe with', async () => {
    const choice = await chooseHypervisor({
      preference: 'auto',
      kvmDevicePresent: true,
      probe: async () => undefined,
    });
    expect(choice.accelerator).toBe('tcg');
    expect(choice.notice).toMatch(/hypervisor: kvm/);
  });
});
