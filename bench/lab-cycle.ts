/**
 * Benchmark: the learner's cycle on a 2-VM lab (master + node1, 1.5 GB each, like the
 * e2e tier): a fresh `klab create` (boot, the whole cluster, verify), `klab snapshot save`,
 * `klab reset` to the checkpoint after provisioning (revert, clocks, health), `klab verify`.
 * Prints each time and the ratio reset / fresh provisioning (target: under 0.1); asserts
 * nothing. Takes 15-25 minutes under software emulation.
 *
 *   npm run build && node dist/bench/lab-cycle.js
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

const CLI = path.resolve(import.meta.dirname, '..', 'src', 'cli.js');
const LAB = '/var/tmp/klab-bench-cycle';
const SPEC = `name: cycle
box: klab/debian-12
stack: debian
network:
  subnet: 192.168.225.0/24
  managementSubnet: 192.168.226.0/24
nodes:
  - { name: master, role: master, memory: 1536 }
  - { name: node1, memory: 1536 }
`;

async function klab(label: string, args: string[]): Promise<number> {
  const started = process.hrtime.bigint();
  const result = await execa('node', [CLI, '--dir', LAB, ...args], {
    env: { CI: 'true' },
    reject: false,
    all: true,
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.exitCode !== 0) {
    throw new Error(
      `${label} failed (exit ${result.exitCode}):\n${String(result.all).slice(-3000)}`,
    );
  }
  console.log(`${label}: ${seconds.toFixed(1)} s`);
  return seconds;
}

async function main(): Promise<void> {
  await rm(LAB, { recursive: true, force: true });
  await mkdir(LAB, { recursive: true });
  await writeFile(path.join(LAB, 'klab.yaml'), SPEC);
  try {
    const fresh = await klab('klab create (2 VMs, whole cluster, verify)', ['create']);
    const save = await klab('klab snapshot save bench', ['snapshot', 'save', 'bench']);
    const reset = await klab('klab reset after-kubelet (revert, clocks, health)', [
      'reset',
      'after-kubelet',
    ]);
    const verify = await klab('klab verify (after the reset)', ['verify']);
    const resetSaved = await klab('klab reset bench', ['reset', 'bench']);
    console.log(
      `save ${save.toFixed(1)} s, reset ${reset.toFixed(1)} s / ${resetSaved.toFixed(1)} s, ` +
        `verify ${verify.toFixed(1)} s; ratio reset / fresh create: ${(reset / fresh).toFixed(3)} (target < 0.1)`,
    );
  } finally {
    await execa('node', [CLI, '--dir', LAB, 'destroy', '--yes'], { reject: false });
  }
}

await main();
