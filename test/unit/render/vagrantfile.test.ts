import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hypervisorSettings } from '../../../src/model/hypervisor.js';
import { rubyString } from '../../../src/render/ruby.js';
import { renderVagrantfile } from '../../../src/render/vagrantfile.js';
import { expectGolden } from '../../helpers/golden.js';
import { defaultSpec, twoVmSpec } from '../../helpers/specs.js';

function vagrantValidate(content: string): { status: number; output: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'klab-validate-'));
  writeFileSync(path.join(dir, 'Vagrantfile'), content);
  try {
    const output = execFileSync('vagrant', ['validate'], {
      cwd: dir,
      env: { ...process.env, VAGRANT_CHECKPOINT_DISABLE: '1', VAGRANT_DEFAULT_PROVIDER: 'libvirt' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { status: 0, output };
  } catch (error) {
    const e = error as { status: number; stdout: string; stderr: string };
    return { status: e.status, output: `${e.stdout}${e.stderr}` };
  }
}

describe('renderVagrantfile', () => {
  const defaultLab = renderVagrantfile(defaultSpec('klab'), hypervisorSettings('tcg'));
  // A klab-built box, pinned to the build klab registered.
  const duo = renderVagrantfile(
    twoVmSpec(),
    hypervisorSettings('kvm'),
    'klab/debian-12',
    '1.1765130000.0',
  );

  it('renders the default 4-VM lab (TCG) exactly as the golden file', () => {
    expectGolden('Vagrantfile.default-tcg', defaultLab);
  });

  it('renders a custom 2-VM lab (KVM) exactly as the golden file', () => {
    expectGolden('Vagrantfile.duo-kvm', duo);
  });

  it('is accepted by vagrant validate', () => {
    for (const content of [defaultLab, duo]) {
      const result = vagrantValidate(content);
      expect(result.output).toMatch(/Vagrantfile validated successfully/);
      expect(result.status).toBe(0);
    }
  });

  it('pins the box version only when one is given (a klab-built box)', () => {
    expect(duo).toContain('config.vm.box_version = "1.1765130000.0"');
    expect(defaultLab).not.toContain('box_version');
  });

  it('escapes Ruby interpolation and quotes in values', () => {
    expect(rubyString('a"b#{x}\\')).toBe('"a\\"b\\#{x}\\\\"');
    expect(rubyString('line\nnext')).toBe('"line\\nnext"');
  });

  it('uses the TCG driver with qemu64 (never -cpu host) when KVM is unusable', () => {
    expect(defaultLab).toContain('libvirt.driver = "qemu"');
    expect(defaultLab).toContain('libvirt.cpu_model = "qemu64"');
    expect(duo).toContain('libvirt.driver = "kvm"');
    expect(duo).not.toContain('cpu_model');
  });
});
