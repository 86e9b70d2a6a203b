/**
 * Benchmark: `klab create` against a plain `vagrant up` of the very Vagrantfile klab
 * rendered, on the same host: what klab adds on top of booting. Since the cluster steps
 * landed, `klab create` installs and verifies the whole cluster, so the ratio is no longer
 * near 1; bench/lab-cycle.ts times the provisioning and the reset separately.
 * Prints wall times and their ratio; asserts nothing. Uses a 2-VM lab.
 *
 *   npm run build && node dist/bench/create-vs-vagrant.js
 */
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

const CLI = path.resolve(import.meta.dirname, '..', 'src', 'cli.js');
const ROOT = '/var/tmp/klab-bench';
const LAB = path.join(ROOT, 'klab');
const PLAIN = path.join(ROOT, 'plain');
const SPEC = `name: bench
box: klab/debian-12
stack: debian
network:
  subnet: 192.168.223.0/24
  managementSubnet: 192.168.224.0/24
nodes:
  - { name: master, role: master, memory: 1536 }
  - { name: node1, memory: 1536 }
`;

const env = { VAGRANT_CHECKPOINT_DISABLE: '1', CI: 'true' };

async function timed(label: string, argv: string[], cwd: string): Promise<number> {
  const started = process.hrtime.bigint();
  const result = await execa(argv[0] ?? '', argv.slice(1), { cwd, env, reject: false, all: true });
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
  await rm(ROOT, { recursive: true, force: true });
  await mkdir(LAB, { recursive: true });
  await mkdir(PLAIN, { recursive: true });
  await writeFile(path.join(LAB, 'klab.yaml'), SPEC);

  // Warm-up: make sure the box exists and the KVM verdict is cached, so neither run pays it.
  await timed('warm-up: klab box build (cached)', ['node', CLI, 'box', 'build'], LAB);

  const klabSeconds = await timed(
    'klab create (2 VMs, boot + the whole cluster + verify)',
    ['node', CLI, '--dir', LAB, 'create'],
    LAB,
  );
  await timed('klab destroy', ['node', CLI, '--dir', LAB, 'destroy', '--yes'], LAB);

  await copyFile(path.join(LAB, 'Vagrantfile'), path.join(PLAIN, 'Vagrantfile'));
  await mkdir(path.join(PLAIN, '.klab', 'logs'), { recursive: true });
  const vagrantSeconds = await timed(
    'vagrant up --no-parallel (same Vagrantfile)',
    ['vagrant', 'up', '--provider=libvirt', '--no-parallel'],
    PLAIN,
  );
  await timed('vagrant destroy', ['vagrant', 'destroy', '--force'], PLAIN);

  console.log(
    `ratio klab create / vagrant up: ${(klabSeconds / vagrantSeconds).toFixed(2)} ` +
      `(klab adds ${(klabSeconds - vagrantSeconds).toFixed(1)} s: checks, SSH, the cluster, checkpoints, verify)`,
  );
}

await main();
